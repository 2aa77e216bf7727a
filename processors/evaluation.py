"""``feedback eval``: score the enrichment against a labelled file, with the processor's own code.

Guarantees: every text goes through :meth:`processors.enrich.Enricher.assess` (normalisation,
redaction, language, sentences, the configured analyzer and categories), exactly as in the stream
processor. Sentiment labels may be spelled negative|neutral|positive, neg|neu|pos, -1|0|1 or 0|1;
when the data has no neutral label the binary decision is scored (score >= 0 is positive; a text
that was not assessed counts as a miss). Macro-F1 averages over the labels present in the data.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError

Task = Literal["sentiment", "category"]
Format = Literal["csv", "tsv", "jsonl"]
SENTIMENT_CLASSES = ("negative", "neutral", "positive")
_SPELLINGS = {
    "negative": "negative", "neg": "negative", "-1": "negative", "-": "negative",
    "neutral": "neutral", "neu": "neutral", "0": "neutral",
    "positive": "positive", "pos": "positive", "1": "positive", "+1": "positive", "+": "positive",
}


@dataclass
class Report:
    """The scores of one evaluation run (``as_dict`` is the ``--json`` output)."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]
    labels: list[str]
    binary: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class": self.per_class, "confusion": self.confusion}


def read_rows(path: Path, fmt: Format | None, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, raw label) pairs of a csv/tsv/jsonl file; ConfigError when it cannot be used."""
    fmt = fmt or _format_of(path)
    rows: list[tuple[str, str]] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for n, line in enumerate(f, 1):
                    if line.strip():
                        obj = json.loads(line)
                        rows.append(_pick(obj, text_column, label_column, f"line {n}"))
            else:
                reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
                missing = {text_column, label_column} - set(reader.fieldnames or [])
                if missing:
                    raise ConfigError(f"{path}: no column(s) {', '.join(sorted(missing))} "
                                      f"(columns: {', '.join(reader.fieldnames or [])})")
                for n, rec in enumerate(reader, 2):
                    rows.append(_pick(rec, text_column, label_column, f"line {n}"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: not valid {fmt}: {exc}") from exc
    rows = [(t, lab) for t, lab in rows if t.strip() and lab.strip()]
    if not rows:
        raise ConfigError(f"{path}: no labelled rows")
    return rows


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv", "jsonl"):
        return suffix  # type: ignore[return-value]
    if suffix in ("txt", "tab"):
        return "tsv"
    if suffix in ("json", "ndjson"):
        return "jsonl"
    raise ConfigError(f"{path}: cannot tell the format from the name; pass --format csv|tsv|jsonl")


def _pick(obj: Any, text_column: str, label_column: str, where: str) -> tuple[str, str]:
    if not isinstance(obj, dict) or text_column not in obj or label_column not in obj:
        raise ConfigError(f"{where}: needs the fields {text_column!r} and {label_column!r}")
    return str(obj[text_column] or ""), str(obj[label_column] if obj[label_column] is not None else "")


def sentiment_labels(raw: Sequence[str]) -> list[str]:
    """Gold labels as negative|neutral|positive; a 0/1-only column is binary (0 negative, 1 positive)."""
    norm = [r.strip().lower() for r in raw]
    norm = [n[:-2] if n.endswith(".0") else n for n in norm]
    if set(norm) <= {"0", "1"}:
        return ["negative" if n == "0" else "positive" for n in norm]
    out = []
    for n in norm:
        if n not in _SPELLINGS:
            raise ConfigError(f"unknown sentiment label {n!r} (use negative|neutral|positive, -1/0/1 or 0/1)")
        out.append(_SPELLINGS[n])
    return out


def binary_decision(label: str, score: float | None) -> str:
    if label == "not_assessed" or score is None:
        return "not_assessed"
    return "positive" if score >= 0 else "negative"


def score_predictions(gold: Sequence[str], pred: Sequence[str], binary: bool = False) -> Report:
    """Accuracy, macro-F1 over the gold labels, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = sorted(set(gold), key=_order)
    extra = sorted(set(pred) - set(labels), key=_order)
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    matrix = confusion_matrix(gold, pred, labels=labels + extra)
    per_class = {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                       "f1": round(float(f[i]), 4), "support": int(support[i])} for i, lab in enumerate(labels)}
    confusion = {g: {q: int(matrix[i][j]) for j, q in enumerate(labels + extra)}
                 for i, g in enumerate(labels + extra) if g in labels}
    return Report(n=len(gold), accuracy=round(float(accuracy_score(gold, pred)), 4),
                  macro_f1=round(float(sum(f) / len(labels)), 4), per_class=per_class,
                  confusion=confusion, labels=labels, binary=binary)


def _order(label: str) -> tuple[int, str]:
    return (SENTIMENT_CLASSES.index(label) if label in SENTIMENT_CLASSES else 9, label)


def predict(texts: Sequence[str], task: Task, enricher: Any, progress: bool = False) -> list[tuple[str, float | None]]:
    """(label, score) per text: the sentiment label and score, or the top category and its confidence."""
    from processors.enrich import normalize_text

    out: list[tuple[str, float | None]] = []
    for text in _progress(texts, progress):
        a = enricher.assess(normalize_text(text))
        if task == "sentiment":
            out.append((a.sentiment["label"], a.sentiment.get("score")))
        else:
            out.append((a.categories[0]["name"], a.categories[0]["confidence"]))
    return out


def _progress(items: Sequence[str], show: bool) -> Iterable[str]:
    if not show or len(items) < 1000:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description="scoring", console=Console(stderr=True), transient=True)


def evaluate(rows: Sequence[tuple[str, str]], task: Task, enricher: Any, progress: bool = False) -> Report:
    """Score ``enricher`` on (text, gold label) rows."""
    texts = [t for t, _ in rows]
    if task == "sentiment":
        gold = sentiment_labels([lab for _, lab in rows])
        binary = "neutral" not in gold
        preds = predict(texts, task, enricher, progress)
        pred = [binary_decision(lab, s) if binary else lab for lab, s in preds]
        return score_predictions(gold, pred, binary)
    gold = [lab.strip().lower() for _, lab in rows]
    return score_predictions(gold, [lab for lab, _ in predict(texts, task, enricher, progress)])


def render(report: Report, out: Callable[[str], None] = print) -> None:
    """A plain-text report (the default output of ``feedback eval``)."""
    kind = " (binary decision: the data has no neutral label)" if report.binary else ""
    out(f"n={report.n}  accuracy={report.accuracy:.4f}  macro_f1={report.macro_f1:.4f}{kind}")
    out(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for lab, m in report.per_class.items():
        out(f"{lab:<16}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>10}")
    cols = list(next(iter(report.confusion.values())).keys())
    out("confusion (rows: gold, columns: predicted)")
    out(" " * 16 + "".join(f"{c[:12]:>14}" for c in cols))
    for g, row in report.confusion.items():
        out(f"{g[:16]:<16}" + "".join(f"{row[c]:>14}" for c in cols))


def main_json(report: Report) -> None:
    sys.stdout.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")
