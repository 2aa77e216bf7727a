"""An optional supervised category model, trained from analyst-labelled examples.

``feedback train-categories --data labelled.csv --out model.joblib`` fits TF-IDF word and bigram
features with one logistic regression per category (scikit-learn), and saves it with joblib. The
processor uses it when ``FEEDBACK_CATEGORY_MODEL`` points at such a file: a text (or sentence) gets
the model's categories with probability >= its threshold, plus the YAML taxonomy's matches for
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

    def save(self, path: Path) -> None:
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FORMAT, "pipeline": self.pipeline, "classes": self.classes,
                     "threshold": self.threshold, "meta": self.meta}, path)

    @classmethod
    def load(cls, path: Path) -> CategoryModel:
        """Load a model written by :meth:`save` (only load files you trust: joblib runs pickle)."""
        import joblib

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


def train(texts: Sequence[str], labels: Sequence[Sequence[str]], threshold: float = 0.5,
          min_examples: int = 2) -> CategoryModel:
    """Fit a model on ``texts`` and their category lists; ConfigError when the data cannot train one."""
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MultiLabelBinarizer

    if len(texts) != len(labels) or not texts:
        raise ConfigError("training needs at least one labelled text")
    counts: dict[str, int] = {}
    for labs in labels:
        for lab in labs:
            counts[lab] = counts.get(lab, 0) + 1
    classes = sorted(c for c, n in counts.items() if n >= min_examples)
    if len(classes) < 2:
        raise ConfigError(f"training needs at least two categories with {min_examples}+ examples each "
                          f"(found: {', '.join(f'{c}={n}' for c, n in sorted(counts.items())) or 'none'})")
    mlb = MultiLabelBinarizer(classes=classes)
    y = mlb.fit_transform([[lab for lab in labs if lab in classes] for labs in labels])
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)),
        ("clf", OneVsRestClassifier(LogisticRegression(max_iter=2000, class_weight="balanced", C=4.0))),
    ])
    pipeline.fit(list(texts), y)
    meta = {"examples": len(texts), "per_class": {c: counts[c] for c in classes},
            "sklearn": sklearn.__version__}
    return CategoryModel(pipeline, classes, threshold, meta)


def train_file(path: Path, out: Path, text_column: str = "text", label_column: str = "category",
               fmt: str | None = None, threshold: float = 0.5) -> CategoryModel:
    """Train from a csv/tsv/jsonl file of labelled examples and save the model to ``out``."""
    from processors.evaluation import read_rows

    rows = read_rows(path, fmt, text_column, label_column)  # type: ignore[arg-type]
    model = train([t for t, _ in rows], [parse_labels(lab) for _, lab in rows], threshold)
    model.meta["source"] = path.name
    model.save(out)
    return model
