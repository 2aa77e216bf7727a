"""Analyst corrections (``feedback label``) and the trained models' catalogue, in the warehouse.

``feedback label FEEDBACK_ID --sentiment negative|neutral|positive [--category NAME]`` or
``feedback label --file corrections.csv`` (columns ``feedback_id``, ``sentiment`` and/or
``category``, optionally ``analyst``) records who corrected what and when in ``feedback_labels``,
and changes the stored labels: ``feedback.sentiment_label``, and for a category the item's
``feedback_categories`` rows (confidence 1) and ``primary_category``. The corrections are training
data for ``feedback train-sentiment --from-warehouse`` and ``train-categories --from-warehouse``;
``v_label_corrections_daily`` counts them per day and kind (weeks: group its rows by week).

Guarantees: a file is checked whole before anything is written (an unknown id, an unknown label or
a row without a correction is an error naming the line, and nothing changes); all of a command's
corrections are one transaction. Re-processing an item (a replay) rewrites its enriched labels, but
its corrections stay in ``feedback_labels`` and keep their place in training.
"""

from __future__ import annotations

import csv
import getpass
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.errors import ConfigError
from sinks.warehouse.models import Base, Feedback, FeedbackCategory

SENTIMENTS = ("negative", "neutral", "positive")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_\- ]{0,99}$")
TZ = DateTime(timezone=True)


class FeedbackLabel(Base):
    """One analyst correction of one item (``kind`` sentiment|category): who, when, before and after."""

    __tablename__ = "feedback_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feedback_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("feedback.feedback_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(500))
    previous: Mapped[str | None] = mapped_column(String(500))
    analyst: Mapped[str] = mapped_column(String(200))
    corrected_at: Mapped[datetime] = mapped_column(TZ)
    corrected_date: Mapped[date] = mapped_column(Date)

    __table_args__ = (Index("ix_feedback_labels_feedback_id", "feedback_id"),
                      Index("ix_feedback_labels_corrected_date", "corrected_date"))


class ModelRecord(Base):
    """One trained model version (mirrors its card in the model directory; ``active``: in use)."""

    __tablename__ = "models"

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ)
    n_train: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    file: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean)
    activated_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (Index("ix_models_kind_active", "kind", "active"),)


#: Corrections per period for the report: ``v_label_corrections_daily`` grouped by week (portable SQL).
CORRECTIONS_PER_DAY = ("SELECT corrected_date, kind, corrections, items, analysts FROM v_label_corrections_daily "
                       "WHERE corrected_date >= :start ORDER BY corrected_date, kind")


@dataclass(frozen=True)
class Correction:
    feedback_id: uuid.UUID
    sentiment: str | None
    categories: list[str]
    analyst: str
    where: str


def parse_correction(feedback_id: str, sentiment: str | None, category: str | None, analyst: str,
                     where: str) -> Correction:
    """A validated correction; ConfigError naming ``where`` when it cannot be one."""
    try:
        fid = uuid.UUID(feedback_id.strip())
    except (ValueError, AttributeError):
        raise ConfigError(f"{where}: {feedback_id!r} is not a feedback id (a UUID)") from None
    label = (sentiment or "").strip().lower() or None
    if label is not None and label not in SENTIMENTS:
        raise ConfigError(f"{where}: unknown sentiment {sentiment!r} (use {'|'.join(SENTIMENTS)})")
    cats = [c.strip().lower() for c in re.split(r"[;|]", category or "") if c.strip()]
    for c in cats:
        if not _CATEGORY.match(c):
            raise ConfigError(f"{where}: {c!r} is not a category name (letters, digits, _ - and blanks)")
    if len("; ".join(cats)) > 500:
        raise ConfigError(f"{where}: too many categories (at most 500 characters in all)")
    if label is None and not cats:
        raise ConfigError(f"{where}: nothing to correct (give a sentiment and/or a category)")
    if not analyst.strip():
        raise ConfigError(f"{where}: no analyst named")
    return Correction(fid, label, cats, analyst.strip()[:200], where)


def read_corrections(path: Path, analyst: str) -> list[Correction]:
    """Corrections of a csv file (``feedback_id``, ``sentiment`` and/or ``category``, ``analyst``)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or [])
            if "feedback_id" not in fields or not fields & {"sentiment", "category"}:
                raise ConfigError(f"{path}: needs the columns feedback_id and sentiment and/or category "
                                  f"(found: {', '.join(sorted(fields)) or 'none'})")
            out = [parse_correction(row.get("feedback_id") or "", row.get("sentiment"), row.get("category"),
                                    row.get("analyst") or analyst, f"{path.name} line {n}")
                   for n, row in enumerate(reader, 2)]
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid csv: {exc}") from exc
    if not out:
        raise ConfigError(f"{path}: no corrections")
    return out


def apply(engine: Any, corrections: list[Correction], now: datetime | None = None) -> dict[str, int]:
    """Record and apply ``corrections`` in one transaction; ConfigError (nothing changed) for an
    unknown feedback id. Returns counts per kind."""
    now = now or datetime.now(UTC)
    counts = {"sentiment": 0, "category": 0}
    with engine.begin() as conn:
        ids = {c.feedback_id for c in corrections}
        found = {r.feedback_id: r for r in conn.execute(
            select(Feedback.feedback_id, Feedback.sentiment_label, Feedback.primary_category)
            .where(Feedback.feedback_id.in_(ids)))}
        missing = [c for c in corrections if c.feedback_id not in found]
        if missing:
            raise ConfigError(f"{missing[0].where}: no feedback {missing[0].feedback_id} in the warehouse "
                              f"({len(missing)} unknown id(s); nothing was changed)")
        for c in corrections:
            before = found[c.feedback_id]
            base = {"feedback_id": c.feedback_id, "analyst": c.analyst, "corrected_at": now,
                    "corrected_date": now.date()}
            if c.sentiment is not None:
                conn.execute(insert(FeedbackLabel).values(**base, kind="sentiment", value=c.sentiment,
                                                          previous=before.sentiment_label))
                conn.execute(update(Feedback).where(Feedback.feedback_id == c.feedback_id)
                             .values(sentiment_label=c.sentiment))
                counts["sentiment"] += 1
            if c.categories:
                conn.execute(insert(FeedbackLabel).values(**base, kind="category", value="; ".join(c.categories),
                                                          previous=before.primary_category))
                conn.execute(delete(FeedbackCategory).where(FeedbackCategory.feedback_id == c.feedback_id))
                conn.execute(insert(FeedbackCategory), [{"feedback_id": c.feedback_id, "category": name,
                                                         "confidence": 1.0, "rank": i}
                                                        for i, name in enumerate(c.categories)])
                conn.execute(update(Feedback).where(Feedback.feedback_id == c.feedback_id)
                             .values(primary_category=c.categories[0]))
                counts["category"] += 1
    return counts


def label_command(
    feedback_id: Annotated[str | None, typer.Argument(help="The item's feedback id.")] = None,
    sentiment: Annotated[str | None, typer.Option(help="negative, neutral or positive.")] = None,
    category: Annotated[str | None, typer.Option(help="The right category (several: 'a; b').")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A csv of corrections: feedback_id, sentiment "
                                              "and/or category, optionally analyst.")] = None,
    analyst: Annotated[str | None, typer.Option(help="Who corrects (default: the login name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as one JSON object.")] = False,
) -> None:
    """Correct an item's sentiment and/or category (recorded with who and when; used in training)."""
    from pipeline.config import load
    from pipeline.signal_config import ReportSettings
    from sinks.warehouse.commands import _engine

    who = analyst or getpass.getuser()
    if (feedback_id is None) == (file is None):
        raise ConfigError("name one item (FEEDBACK_ID with --sentiment/--category) or --file corrections.csv")
    if file is not None:
        corrections = read_corrections(file, who)
    else:
        assert feedback_id is not None
        corrections = [parse_correction(feedback_id, sentiment, category, who, "the command line")]
    engine = _engine(load(ReportSettings))
    counts = apply(engine, corrections)
    if as_json:
        typer.echo(json.dumps({"corrections": len(corrections), **counts, "analyst": who}))
    else:
        typer.echo(f"recorded {len(corrections)} correction(s): sentiment {counts['sentiment']}, "
                   f"category {counts['category']} (analyst {who})")
