"""Training the category model (:class:`processors.categories_model.CategoryModel`): from a labelled
file into a plain file (``--out``), or versioned with the same holdout gate as sentiment
(:func:`train_categories`): analyst category corrections in the warehouse are training data too.

Guarantees: labels may hold several categories separated by ``;`` or ``|``; the holdout is scored
on the top category through the enrichment's own code; nothing is written with ``dry_run``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from processors.categories_model import CategoryModel, parse_labels


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


def train_categories(texts: Sequence[str], labels: Sequence[Sequence[str]], settings: Any, *, threshold: float = 0.5,
                     min_per_class: int = 10, force: bool = False, dry_run: bool = False, source: str = "",
                     log: Callable[[str], None] = lambda m: None) -> Any:
    """Fit on four fifths, score the top category of the held-out fifth against the current tagging
    (the active category model, else the taxonomy), and version/activate like sentiment."""
    import time

    from processors.evaluation import evaluate
    from processors.learning.train import TrainReport, _enricher, _gate, split

    started = time.perf_counter()
    firsts = [labs[0] if labs else "" for labs in labels]
    counts = Counter(lab for labs in labels for lab in labs)
    usable = sorted(c for c, n in counts.items() if n >= min_per_class)
    if len(usable) < 2:
        shown = ", ".join(f"{c}={n}" for c, n in sorted(counts.items())) or "none"
        raise ConfigError(f"training needs at least two categories with {min_per_class}+ examples each: {shown}")
    train_idx, hold_idx = split(texts, firsts, 0.2 if settings is None else settings.train_holdout_fraction)
    log(f"training on {len(train_idx)} rows, holding out {len(hold_idx)} ...")
    model = train([texts[i] for i in train_idx], [labels[i] for i in train_idx], threshold, min_per_class // 2 or 1)
    holdout = [(texts[i], firsts[i]) for i in hold_idx if firsts[i]]
    current = _enricher(settings)
    new = _enricher(settings, category_model=model)
    rep_new = evaluate(holdout, "category", new)
    rep_cur = evaluate(holdout, "category", current)
    current_name = "taxonomy"
    active = getattr(current.category_model, "active", None)
    if active is not None and active.current is not None:
        current_name = active.current[0]
    elif isinstance(current.category_model, CategoryModel):
        current_name = "FEEDBACK_CATEGORY_MODEL"
    report = TrainReport("category", len(train_idx), len(hold_idx),
                         {"per_class": dict(sorted(counts.items())), "train": len(train_idx), "holdout": len(hold_idx)},
                         rep_new.macro_f1, rep_cur.macro_f1, current_name, False, "", dry_run,
                         holdout={"new": rep_new.as_dict(), "current": rep_cur.as_dict()}, source=source)
    report.seconds = {"total": round(time.perf_counter() - started, 2)}
    return _gate(report, "category", model, settings, force, dry_run, dict(model.meta))

