"""Warehouse rows of the enrichment: one row per feedback item x sentence x category (aspects).

Guarantees: :func:`write_aspects` replaces an item's aspects in the caller's transaction, so a
re-delivered record leaves exactly one set of aspect rows; deleting a feedback row deletes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.schema import EnrichedFeedback
from sinks.warehouse import bulk
from sinks.warehouse.models import Base


class FeedbackAspect(Base):
    """One sentence of a feedback item x one category it mentions, with that sentence's sentiment."""

    __tablename__ = "feedback_aspects"

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.feedback_id", ondelete="CASCADE"), primary_key=True
    )
    sentence: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    sentiment_label: Mapped[str] = mapped_column(String(16))
    sentiment_score: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_feedback_aspects_category_label", "category", "sentiment_label"),)


def aspect_rows(items: Iterable[EnrichedFeedback]) -> list[dict[str, Any]]:
    return [
        {"feedback_id": i.feedback_id, "sentence": a.sentence, "category": a.category, "text": a.text,
         "confidence": a.confidence, "sentiment_label": a.label, "sentiment_score": a.score}
        for i in items
        for a in i.aspects
    ]


#: Column of ``feedback_aspects`` -> attribute of :class:`~pipeline.schema.Aspect`.
_ASPECT_FIELDS = {"sentence": "sentence", "category": "category", "text": "text", "confidence": "confidence",
                  "sentiment_label": "label", "sentiment_score": "score"}


def aspect_columns(items: Sequence[EnrichedFeedback], ids: Sequence[Any] | None = None) -> dict[str, list[Any]]:
    """:func:`aspect_rows` column-wise (what the sink writes); ``ids``: the items' feedback ids as the
    feedback rows hold them (see :func:`~sinks.warehouse.writer.category_columns`)."""
    per_item = list(map(attrgetter("aspects"), items))
    aspects = list(chain.from_iterable(per_item))
    if ids is None:
        ids = list(map(attrgetter("feedback_id"), items))
    cols: dict[str, list[Any]] = {"feedback_id": bulk.repeat_each(ids, list(map(len, per_item)))}
    for column, field in _ASPECT_FIELDS.items():
        cols[column] = list(map(attrgetter(field), aspects))
    return cols


def write_aspects(conn: Connection, items: Sequence[EnrichedFeedback], replace: bool = True,
                  ids: Sequence[Any] | None = None) -> int:
    """Replace the aspects of ``items`` (inside the caller's transaction); returns rows inserted.

    ``replace=False`` skips deleting the old aspects: for items whose feedback rows the caller has
    just inserted (none existed, so no aspect row can). ``ids``: see :func:`aspect_columns`."""
    if replace:
        bulk.delete_in(conn, FeedbackAspect.__table__.c.feedback_id, [i.feedback_id for i in items])
    cols = aspect_columns(items, ids)
    if cols["feedback_id"]:
        bulk.insert_columns(conn, FeedbackAspect.__table__, cols)
    return len(cols["feedback_id"])
