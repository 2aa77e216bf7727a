"""Weak sentiment labels from a customer's own score, and training rows read from a file.

NPS 0-6 (detractor) negative, 7-8 (passive) neutral, 9-10 (promoter) positive; CSAT and stars 1-2
negative, 3 neutral, 4-5 positive. An analyst's correction is a strong label and replaces the weak
label of the same item (:func:`merge`).

Guarantees: a file that lacks a named column, holds a label outside negative|neutral|positive
(and their spellings, see :mod:`processors.evaluation`) or a score outside its scale is refused
with a :class:`~pipeline.errors.ConfigError` naming the line; :func:`check_classes` refuses data
with a single class or too few rows of any class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import ConfigError
from processors.sentiment_trained import SCALES, weak_label

__all__ = ["ORIGINS", "SCALES", "Row", "Scale", "check_classes", "merge", "read_file", "weak_label"]

Scale = Literal["nps", "csat", "stars"]
ORIGINS = ("weak", "label", "correction")


@dataclass(frozen=True)
class Row:
    """One training example: its text, label, where the label came from and (if known) its item."""

    text: str
    label: str
    origin: str = "label"  # weak (from a score) | label (a labelled file) | correction (an analyst)
    item: str | None = None


def read_file(path: Path, fmt: str | None, text_column: str, label_column: str | None = None,
              score_column: str | None = None, scale: str | None = None) -> list[Row]:
    """Training rows of a csv/tsv/jsonl file: labels from ``label_column``, or weak labels from
    ``score_column`` on ``scale``. Rows with an empty text or an empty label/score are skipped."""
    from processors.evaluation import read_rows, sentiment_labels

    if (label_column is None) == (score_column is None):
        raise ConfigError("name either --label-column or --score-column (with --score-scale)")
    if score_column is not None:
        if scale not in SCALES:
            raise ConfigError(f"--score-scale must be one of {', '.join(SCALES)} with --score-column")
        rows = read_rows(path, fmt, text_column, score_column)  # type: ignore[arg-type]
        out = []
        for n, (text, raw) in enumerate(rows, 1):
            label = weak_label(raw.strip(), scale)
            if label is None:
                raise ConfigError(f"{path}: row {n}: score {raw!r} is not a whole number on the {scale} scale "
                                  f"({SCALES[scale][0]}-{SCALES[scale][1]})")
            out.append(Row(text, label, "weak"))
        return out
    assert label_column is not None
    rows = read_rows(path, fmt, text_column, label_column)  # type: ignore[arg-type]
    raw_labels = [lab for _, lab in rows]
    labels = sentiment_labels(raw_labels)  # ConfigError naming an unknown label
    return [Row(text, label, "label") for (text, _), label in zip(rows, labels, strict=True)]


def merge(weak: Iterable[Row], corrections: Iterable[Row]) -> list[Row]:
    """Weak rows with each corrected item's label replaced by its (latest) correction; corrections of
    items without a weak label are added."""
    latest: dict[str, Row] = {}
    for c in corrections:
        if c.item is not None:
            latest[c.item] = c
    out = []
    for r in weak:
        out.append(latest.pop(r.item) if r.item is not None and r.item in latest else r)
    out.extend(latest.values())
    return out


def check_classes(labels: Sequence[str], min_per_class: int, kind: str = "sentiment") -> dict[str, int]:
    """Per-class counts; ConfigError for a single class or a class under ``min_per_class`` rows."""
    counts = dict(sorted(Counter(labels).items()))
    shown = ", ".join(f"{c}={n}" for c, n in counts.items()) or "none"
    if len(counts) < 2:
        raise ConfigError(f"training needs at least two {kind} classes; the data has {shown}")
    few = {c: n for c, n in counts.items() if n < min_per_class}
    if few:
        raise ConfigError(f"too few rows per class to train and hold out a fifth (at least {min_per_class} "
                          f"each, FEEDBACK_TRAIN_MIN_PER_CLASS): {shown}")
    return counts
