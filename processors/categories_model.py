"""An optional supervised category model, trained from analyst-labelled examples (the runtime half:
training lives in :mod:`processors.learning.categories`).

``feedback train-categories --data labelled.csv`` fits TF-IDF word and bigram features with one
logistic regression per category (scikit-learn) and saves it with joblib, as a versioned model
(activated when it beats the current tagging on a held-out fifth) or, with ``--out``, as a plain
file. The processor uses ``FEEDBACK_CATEGORY_MODEL`` when it points at such a file, else the active
versioned model (:class:`ActiveCategoryModel`, picked up without a restart): a text (or sentence)
gets the model's categories with probability >= its threshold, plus the YAML taxonomy's matches for
categories the model was not trained on; a text neither tags becomes ``other``.

Guarantees: labels may hold several categories separated by ``;`` or ``|``; a saved model records
its categories, threshold, training size and library versions, and loading a file that is not
such a model is a ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.schema import CategoryTag

FORMAT = "feedback-category-model/1"
_SPLIT = re.compile(r"\s*[;|]\s*")


@dataclass
class CategoryModel:
    """A fitted model: ``predict`` gives, per text, the categories at or above ``threshold``."""

    pipeline: Any
    classes: list[str]
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> list[list[CategoryTag]]:
        """Per text, its categories best first (empty when none reaches the threshold)."""
        if not texts:
            return []
        probs = self.pipeline.predict_proba(list(texts))
        out = []
        for row in probs:
            tags = [(float(p), c) for c, p in zip(self.classes, row, strict=True) if p >= self.threshold]
            tags.sort(key=lambda x: (-x[0], x[1]))
            out.append([CategoryTag(name=c, confidence=round(min(1.0, p), 3)) for p, c in tags])
        return out

    def save(self, path: Path) -> str:
        """Write the model and return the file's SHA-256."""
        import joblib

        from processors.linear_text import file_sha256

        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FORMAT, "pipeline": self.pipeline, "classes": self.classes,
                     "threshold": self.threshold, "meta": self.meta}, path)
        return file_sha256(path)

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> CategoryModel:
        """Load a model written by :meth:`save` (only load files you trust: joblib runs pickle); with
        ``sha256``, a file whose hash differs is refused before it is unpickled."""
        import joblib

        if sha256 is not None:
            from processors.linear_text import file_sha256

            try:
                actual = file_sha256(path)
            except OSError as exc:
                raise ConfigError(f"category model {path}: {exc}") from exc
            if actual != sha256:
                raise ConfigError(f"category model {path}: SHA-256 differs from its card's (corrupt or replaced)")
        try:
            data = joblib.load(path)
        except FileNotFoundError as exc:
            raise ConfigError(f"FEEDBACK_CATEGORY_MODEL: no file {path}") from exc
        except Exception as exc:
            raise ConfigError(f"FEEDBACK_CATEGORY_MODEL: cannot load {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"FEEDBACK_CATEGORY_MODEL: {path} is not a category model ({FORMAT})")
        return cls(data["pipeline"], list(data["classes"]), float(data["threshold"]), dict(data.get("meta", {})))


def parse_labels(raw: str) -> list[str]:
    """``"billing; delivery"`` -> ``["billing", "delivery"]`` (lower-cased, de-duplicated)."""
    out: list[str] = []
    for part in _SPLIT.split(raw.strip().lower()):
        if part and part not in out:
            out.append(part)
    return out


class ActiveCategoryModel:
    """The active versioned category model of a model directory (None: taxonomy only), re-read when
    its pointer changes; a file that cannot be loaded is refused and the model in use stays."""

    def __init__(self, store: Any, poll_seconds: float = 10.0) -> None:
        from processors.model_store import ActiveModel

        self.active = ActiveModel(store, "category", lambda p, sha: CategoryModel.load(p, sha), poll_seconds)

    @property
    def current(self) -> CategoryModel | None:
        self.active.maybe_refresh()
        return self.active.current[1] if self.active.current is not None else None
