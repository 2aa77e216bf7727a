"""Fit the ensemble's weights and neutral band on the *tune* split of the evaluation data.

``python -m processors.eval_cli --tune`` (or ``make eval TUNE=1``) calls :func:`tune` and writes
``processors/sentiment_model.json``. Features are computed by the processor's own code
(:meth:`Enricher.prepare`, :func:`sentence_signals`, contrast weights). The regularisation C and
the neutral band are chosen on a validation fifth *of the tune split* (by SHA-256 of the text),
then the model is refitted on the whole tune split. Each set weighs the same in the fit, so the
largest set (movie snippets) does not decide alone. Deterministic: same data, same weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from processors.enrich import Enricher, assessable
from processors.sentiment import (
    CLASSES,
    DENSE_FEATURES,
    EnsembleModel,
    SentenceSignals,
    bag_of_terms,
    contrast_weights,
    dense_features,
    sentence_signals,
)

C_GRID = (0.03, 0.1, 0.3, 1.0)
BANDS = tuple(round(0.02 * i, 2) for i in range(31))
CS_PRIOR = 0.6  # logit per unit of customer-service valence: a domain prior (see docs/evaluation.md)
MIN_TERM_COUNT = 2
MIN_TERM_WEIGHT = 0.01


@dataclass
class Example:
    dataset: str
    text: str
    label: str
    dense: list[float]
    bag: dict[str, float]


def doc_signals(enricher: Enricher, text: str) -> list[SentenceSignals] | None:
    """The sentence signals the processor would compute for ``text`` (None: not assessed)."""
    from processors.enrich import normalize_text

    _, _, detected, sentences = enricher.prepare(normalize_text(text))
    if not assessable(detected, None):
        return None
    sigs = [sentence_signals(s) for s in sentences]
    for s, w in zip(sigs, contrast_weights(sentences), strict=True):
        s.weight = w
    return sigs


def examples(enricher: Enricher, sets: dict[str, Sequence[tuple[str, str]]]) -> list[Example]:
    out = []
    for name, rows in sets.items():
        for text, label in rows:
            sigs = doc_signals(enricher, text)
            if sigs is not None:
                out.append(Example(name, text, label, dense_features(sigs), bag_of_terms(sigs)))
    return out


def _is_validation(text: str) -> bool:
    return int(hashlib.sha256(("validation:" + text).encode()).hexdigest()[:8], 16) % 5 == 0


def _fit(train: Sequence[Example], c: float) -> Any:
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    counts: dict[str, int] = {}
    for e in train:
        for t in e.bag:
            counts[t] = counts.get(t, 0) + 1
    vocab = {t for t, n in counts.items() if n >= MIN_TERM_COUNT}
    vec = DictVectorizer()
    x_terms = vec.fit_transform([{t: v for t, v in e.bag.items() if t in vocab} for e in train])
    x = sparse.hstack([x_terms, sparse.csr_matrix(np.array([e.dense for e in train]))]).tocsr()
    sizes: dict[str, int] = {}
    for e in train:
        sizes[e.dataset] = sizes.get(e.dataset, 0) + 1
    mean = len(train) / len(sizes)
    weights = np.array([mean / sizes[e.dataset] for e in train])
    clf = LogisticRegression(C=c, max_iter=3000, tol=1e-5)
    clf.fit(x, [e.label for e in train], sample_weight=weights)
    assert tuple(clf.classes_) == CLASSES, clf.classes_
    return vec, clf


def _model(vec: Any, clf: Any, band: float, meta: dict[str, Any]) -> EnsembleModel:
    names = vec.get_feature_names_out()
    n_terms = len(names)
    coef = clf.coef_
    terms = {}
    for j, name in enumerate(names):
        w = [float(coef[c][j]) for c in range(3)]
        if max(abs(v) for v in w) >= MIN_TERM_WEIGHT:
            terms[str(name)] = [round(v, 4) for v in w]
    dense = [[round(float(coef[c][n_terms + k]), 5) for k in range(len(DENSE_FEATURES))] for c in range(3)]
    return EnsembleModel([round(float(b), 5) for b in clf.intercept_], dense, terms, band, CS_PRIOR, meta)


def _macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0))


def _score(model: EnsembleModel, val: Sequence[Example]) -> tuple[float, float]:
    """(best mean macro-F1 over the validation sets, the band that gives it)."""
    by_set: dict[str, list[tuple[str, float]]] = {}
    for e in val:
        pn, _, pp = model.probabilities(e.dense, e.bag)
        by_set.setdefault(e.dataset, []).append((e.label, pp - pn))
    best = (-1.0, 0.0)
    for band in BANDS:
        scores = []
        for rows in by_set.values():
            gold = [g for g, _ in rows]
            if "neutral" in gold:
                pred = ["positive" if s > band else "negative" if s < -band else "neutral" for _, s in rows]
            else:
                pred = ["positive" if s >= 0 else "negative" for _, s in rows]
            scores.append(_macro_f1(gold, pred))
        mean = sum(scores) / len(scores)
        if mean > best[0] + 1e-9:
            best = (mean, band)
    return best


def tune(enricher: Enricher, tune_sets: dict[str, Sequence[tuple[str, str]]],
         log: Any = print) -> EnsembleModel:
    """Choose C and the band on a validation fifth of the tune split, refit on all of it."""
    data = examples(enricher, tune_sets)
    train = [e for e in data if not _is_validation(e.text)]
    val = [e for e in data if _is_validation(e.text)]
    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    for c in C_GRID:
        vec, clf = _fit(train, c)
        f1, band = _score(_model(vec, clf, 0.0, {}), val)
        log(f"  C={c:<5} validation mean macro-F1={f1:.4f} (band {band:.2f})")
        if f1 > best[0]:
            best = (f1, c, band)
    _, c, band = best
    vec, clf = _fit(data, c)
    meta = {"C": c, "band_from_validation": band, "tune_examples": len(data),
            "sets": sorted(tune_sets), "cs_prior": CS_PRIOR}
    model = _model(vec, clf, band, meta)
    log(f"  chosen C={c}, band={band}; {len(model.terms)} terms kept")
    return model
