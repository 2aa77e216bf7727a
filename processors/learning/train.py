"""Train, measure on a held-out fifth, and activate only when better: ``feedback train-sentiment`` and
the versioned ``feedback train-categories``.

The data is split once, stratified by label (scikit-learn ``train_test_split``, seed 17); the new
model is fitted on the rest; the new model and the current one (the active trained model, else
the shipped default) label the held-out rows through :meth:`processors.enrich.Enricher.assess`,
the stream processor's own code; macro-F1 decides. When the public evaluation sets are in the
``make eval`` cache, both are also scored on their report splits (shown, not used to decide).

Guarantees: nothing is written with ``dry_run``; otherwise the model file, its card and (when the
warehouse has the table) its ``models`` row are written, and the model is activated only when its
holdout macro-F1 is higher than the current model's, or with ``force``; bad data raises
ConfigError before anything is written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processors.learning import catalog
from processors.learning.weak import Row, check_classes
from processors.model_store import Kind, ModelStore, new_version

SEED = 17


@dataclass
class TrainReport:
    """What one training run did (``as_dict`` is the ``--json`` output)."""

    kind: str
    n_train: int
    n_holdout: int
    counts: dict[str, Any]
    macro_f1_new: float
    macro_f1_current: float
    current_model: str
    activated: bool
    decision: str
    dry_run: bool
    model_version: str | None = None
    file: str | None = None
    catalog: str = ""
    holdout: dict[str, Any] = field(default_factory=dict)
    public_sets: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split(items: Sequence[Any], labels: Sequence[str], fraction: float) -> tuple[list[int], list[int]]:
    """Indices (train, holdout): a stratified ``fraction`` held out (seed 17)."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(items)))
    try:
        train, hold = train_test_split(idx, test_size=fraction, stratify=list(labels), random_state=SEED)
    except ValueError:  # a class too small to stratify (categories): a plain random split
        train, hold = train_test_split(idx, test_size=fraction, random_state=SEED)
    return sorted(train), sorted(hold)


def _languages(texts: Sequence[str]) -> list[str]:
    """Languages that hold at least max(20, 2%) of the training texts (the model scores those)."""
    from processors import language

    counts = Counter(language.detect(t).language for t in texts)
    floor = max(20, int(0.02 * len(texts)))
    return sorted(lang for lang, n in counts.items() if n >= floor and lang not in ("und", ""))


def _enricher(settings: Any, analyzer: Any = None, category_model: Any = None) -> Any:
    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    if analyzer is None and category_model is None:
        return Enricher.from_settings(settings)  # what the processor runs now (active models included)
    return Enricher(Taxonomy.load(settings.taxonomy_file), settings.neutral_band, analyzer or settings.sentiment,
                    category_model, tuple(settings.phone_regions), settings.ensemble_neutral_band)


def public_scores(cache: Path | None, new: Any, current: Any) -> dict[str, Any]:
    """Macro-F1 of both on the report split of each cached public set ({} when not cached)."""
    if cache is None or not (cache / "READY").exists():
        return {}
    from processors import eval_data
    from processors.evaluation import evaluate

    out = {}
    for name, rows in eval_data.load_sets(cache).items():
        report = eval_data.split(rows)[1]
        out[name] = {"n": len(report), "macro_f1_new": evaluate(report, "sentiment", new).macro_f1,
                     "macro_f1_current": evaluate(report, "sentiment", current).macro_f1}
    return out


def train_sentiment(rows: Sequence[Row], settings: Any, *, force: bool = False, dry_run: bool = False,
                    source: str = "", public_cache: Path | None = None,
                    log: Callable[[str], None] = lambda m: None) -> TrainReport:
    """Train a sentiment model on ``rows`` and gate it (see the module docstring)."""
    from processors.evaluation import evaluate
    from processors.linear_text import fit
    from processors.sentiment_trained import TrainedAnalyzer

    started = time.perf_counter()
    labels = [r.label for r in rows]
    per_class = check_classes(labels, settings.train_min_per_class)
    train_idx, hold_idx = split(rows, labels, settings.train_holdout_fraction)
    texts = [rows[i].text for i in train_idx]
    log(f"training on {len(train_idx)} rows, holding out {len(hold_idx)} ...")
    t = time.perf_counter()
    model = fit(texts, [labels[i] for i in train_idx])
    model.meta["languages"] = _languages(texts)
    fit_seconds = time.perf_counter() - t
    holdout = [(rows[i].text, labels[i]) for i in hold_idx]
    current = _enricher(settings)
    new = _enricher(settings, analyzer=TrainedAnalyzer(model, "candidate"))
    rep_new = evaluate(holdout, "sentiment", new)
    rep_cur = evaluate(holdout, "sentiment", current)
    public = public_scores(public_cache, new, current)
    counts = {"per_class": per_class, "origins": dict(sorted(Counter(r.origin for r in rows).items())),
              "train": len(train_idx), "holdout": len(hold_idx)}
    report = TrainReport("sentiment", len(train_idx), len(hold_idx), counts, rep_new.macro_f1, rep_cur.macro_f1,
                         current.model_name, False, "", dry_run, holdout={"new": rep_new.as_dict(),
                                                                          "current": rep_cur.as_dict()},
                         public_sets=public, source=source)
    report.seconds = {"fit": round(fit_seconds, 2), "total": round(time.perf_counter() - started, 2)}
    return _gate(report, "sentiment", model, settings, force, dry_run, model.meta)


def _gate(report: TrainReport, kind: Kind, model: Any, settings: Any, force: bool, dry_run: bool,
          meta: dict[str, Any]) -> TrainReport:
    better = report.macro_f1_new > report.macro_f1_current
    verdict = (f"holdout macro-F1 {report.macro_f1_new:.4f} vs {report.macro_f1_current:.4f} "
               f"({report.current_model})")
    if dry_run:
        would = "activate" if better or force else "not activate"
        report.decision = f"dry run: nothing written; would {would}: {verdict}"
        return report
    store = ModelStore(settings.models_path)
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.root / f".{kind}-candidate.joblib"
    sha = model.save(tmp)
    version = new_version(kind, sha)
    while store.card_path(version).exists() or store.file(version).exists():  # never overwrite a version
        version = new_version(kind, sha)
    path = store.file(version)
    tmp.replace(path)
    card = {"version": version, "kind": kind, "created_at": datetime.now(UTC).isoformat(), "file": path.name,
            "sha256": sha, "n_train": report.n_train, "n_holdout": report.n_holdout, "counts": report.counts,
            "metrics": {"macro_f1_new": report.macro_f1_new, "macro_f1_current": report.macro_f1_current,
                        "current_model": report.current_model, "holdout": report.holdout,
                        "public_sets": report.public_sets},
            "source": report.source, "model": {k: v for k, v in meta.items() if k != "per_class"}}
    store.write_card(card)
    engine = catalog.engine_for(settings.database_url)
    report.catalog = catalog.record(engine, card)
    report.model_version, report.file = version, str(path)
    if better or force:
        store.activate(version)
        catalog.set_active(engine, kind, version)
        report.activated = True
        report.decision = ("activated: " if better else "activated (--force): ") + verdict
    else:
        report.decision = "kept the current model (not better on the holdout; --force activates anyway): " + verdict
    return report
