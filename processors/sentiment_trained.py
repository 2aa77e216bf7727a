"""Sentiment from a model trained on the organisation's own feedback, hot-swapped while running.

* :class:`TrainedAnalyzer` scores a text and each of its sentences with a
  :class:`~processors.linear_text.LinearTextModel`: ``score`` = P(positive) - P(negative),
  ``label`` = the most probable class, ``confidence`` = its probability, ``polarity`` = ``score`` and
  ``subjectivity`` = 1 - P(neutral). It scores every language its training data held
  (``languages`` in the model card), not only English.
* :class:`SwitchingAnalyzer` is what the enricher runs: the active trained model when there is one
  (:class:`~processors.model_store.ActiveModel` watches the pointer file, so a newly activated
  model is used within ``FEEDBACK_MODEL_POLL_SECONDS`` without a restart), else the shipped default.
* :func:`combine` puts a record's own score (NPS, CSAT, stars) next to its text: the text's class
  probabilities are multiplied by the score's likelihood ``q(class | score class)`` (0.6 for the
  score's own class, 0.2 for each other) raised to ``FEEDBACK_SENTIMENT_SCORE_WEIGHT``; the label is
  the most probable class afterwards, ``score`` and ``confidence`` are recomputed from the product,
  and ``analyzer`` gains ``+nps``/``+csat``/``+stars`` so such labels can be told apart.

Guarantees: every result carries ``model`` (the trained version or the shipped analyzer's name);
scores stay in [-1, 1]; a model that cannot be loaded never replaces the one in use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.schema import FeedbackRecord
from processors.linear_text import LinearTextModel, round4
from processors.model_store import ActiveModel, ModelStore
from processors.sentiment import Analyzer, Scores

CLASSES = ("negative", "neutral", "positive")
SCORE_MATCH, SCORE_OTHER = 0.6, 0.2  # q(class | score class): the score's own class, each other one
#: Each scale's range. Its weak label: NPS 0-6 negative, 7-8 neutral, 9-10 positive; CSAT and stars
#: 1-2 negative, 3 neutral, 4-5 positive.
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "stars": (1, 5)}


def weak_label(value: float | int | str, scale: str) -> str | None:
    """The weak label of a score on ``scale``; None when the value is not a whole number in range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    lo, hi = SCALES[scale]
    if number != int(number) or not lo <= number <= hi:
        return None
    n = int(number)
    if scale == "nps":
        return "negative" if n <= 6 else "neutral" if n <= 8 else "positive"
    return "negative" if n <= 2 else "neutral" if n == 3 else "positive"


def load_sentiment_model(path: Path, sha256: str | None = None) -> LinearTextModel:
    """A trained sentiment model (ConfigError when the file is unusable or not a sentiment model)."""
    from pipeline.errors import ConfigError

    model = LinearTextModel.load(path, sha256)
    if not set(model.classes) <= set(CLASSES) or len(model.classes) < 2:
        raise ConfigError(f"model file {path}: classes {model.classes} are not sentiment labels")
    return model


class TrainedAnalyzer(Analyzer):
    """A trained linear model (see the module docstring); ``version`` is recorded on every result."""

    name = "trained"

    def __init__(self, model: LinearTextModel, version: str) -> None:
        self.model = model
        self.version = version
        self.languages = frozenset(model.meta.get("languages", ()))
        self._index = [model.classes.index(c) if c in model.classes else -1 for c in CLASSES]
        self._identity = self._index == [0, 1, 2]

    def _result(self, p: Sequence[float]) -> Scores:
        if self._identity:
            return result_from_probs(p, self.name, self.version)
        return result_from_probs([p[i] if i >= 0 else 0.0 for i in self._index], self.name, self.version)

    def _one(self, text: str) -> Scores:
        return self._result(self.model.probabilities(text))

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        if len(sentences) == 1 and sentences[0] == text:
            per = [self._one(text)]
            return per[0], per
        overall, parts = self.model.probabilities_with_parts(text, sentences)  # one pass over the words
        if self._identity:
            name, version = self.name, self.version
            return result_from_probs(overall, name, version), [result_from_probs(p, name, version) for p in parts]
        return self._result(overall), [self._result(p) for p in parts]


def result_from_probs(probs: Sequence[float], analyzer: str, model: str) -> Scores:
    """A sentiment dict from (P(negative), P(neutral), P(positive)); ``_p`` keeps the probabilities."""
    pn, pu, pp = probs
    score = pp - pn
    score = 1.0 if score > 1.0 else -1.0 if score < -1.0 else score
    if pn >= pu and pn >= pp:  # the first of the most probable, in CLASSES order
        label, top = "negative", pn
    elif pu >= pp:
        label, top = "neutral", pu
    else:
        label, top = "positive", pp
    subjectivity = 1.0 - pu
    score = round4(score)  # polarity and score: one rounding
    return {"polarity": score, "subjectivity": round4(0.0 if subjectivity < 0.0 else subjectivity),
            "label": label, "analyzer": analyzer, "score": score,
            "confidence": round4(1.0 if top > 1.0 else top), "model": model, "_p": (pn, pu, pp)}



class SwitchingAnalyzer(Analyzer):
    """The active trained sentiment model of ``store`` when there is one, else ``default``."""

    def __init__(self, default: Analyzer, store: ModelStore, poll_seconds: float = 10.0) -> None:
        self.default = default
        self._trained: TrainedAnalyzer | None = None
        self.active = ActiveModel(store, "sentiment", self._load, poll_seconds)

    def _load(self, path: Path, sha256: str) -> TrainedAnalyzer:
        model = load_sentiment_model(path, sha256)
        return TrainedAnalyzer(model, path.stem)

    @property
    def current(self) -> Analyzer:
        self.active.maybe_refresh()
        return self.active.current[1] if self.active.current is not None else self.default

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.current.name

    @property
    def model_name(self) -> str:
        a = self.current
        return a.version if isinstance(a, TrainedAnalyzer) else a.name

    @property
    def languages(self) -> frozenset[str]:
        a = self.current
        return a.languages if isinstance(a, TrainedAnalyzer) else frozenset()

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        return self.current.scores(text, sentences)


def score_class(record: FeedbackRecord) -> tuple[str, str] | None:
    """(scale, class) of the record's own score: NPS first, then CSAT, then stars; None without one."""
    for scale, value in (("nps", record.nps_score), ("csat", record.csat_score), ("stars", record.stars)):
        if value is not None:
            label = weak_label(value, scale)
            if label is not None:
                return scale, label
    return None


def combine(sentiment: dict[str, Any], probs: Sequence[float], scale: str, label: str, weight: float) -> Scores:
    """The text's sentiment with the record's score in view (see the module docstring)."""
    if weight <= 0:
        return sentiment
    logs = [math.log(max(p, 1e-12)) + weight * math.log(SCORE_MATCH if c == label else SCORE_OTHER)
            for p, c in zip(probs, CLASSES, strict=True)]
    top = max(logs)
    e = [math.exp(x - top) for x in logs]
    total = sum(e)
    post = [x / total for x in e]
    out = result_from_probs(post, f"{sentiment['analyzer']}+{scale}", sentiment.get("model") or "")
    out["polarity"], out["subjectivity"] = sentiment["polarity"], sentiment["subjectivity"]
    out["model"] = sentiment.get("model")
    return out
