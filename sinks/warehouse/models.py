"""Warehouse tables. Columns mirror :mod:`pipeline.schema`; nothing here redefines a field's meaning."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


class Feedback(Base):
    """One row per feedback item (primary key: feedback_id), upserted idempotently."""

    __tablename__ = "feedback"

    feedback_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    schema_version: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(500))
    source_ref: Mapped[str] = mapped_column(String(500))
    thread_ref: Mapped[str | None] = mapped_column(String(500))
    customer_ref: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(1000))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    nps_score: Mapped[int | None] = mapped_column(SmallInteger)
    nps_class: Mapped[str | None] = mapped_column(String(16))
    csat_score: Mapped[int | None] = mapped_column(SmallInteger)
    stars: Mapped[int | None] = mapped_column(SmallInteger)
    product: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON)
    attributes: Mapped[dict[str, object]] = mapped_column(JSON)
    sentiment_polarity: Mapped[float] = mapped_column(Float)
    sentiment_subjectivity: Mapped[float] = mapped_column(Float)
    sentiment_label: Mapped[str] = mapped_column(String(16))
    sentiment_analyzer: Mapped[str] = mapped_column(String(50))
    primary_category: Mapped[str | None] = mapped_column(String(100))  # NULL: a score-only answer (0012)
    # -- enrichment (revision 0003_enrichment; NULL for rows written before it) ------------------
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    sentiment_confidence: Mapped[float | None] = mapped_column(Float)
    detected_language: Mapped[str | None] = mapped_column(String(35), index=True)
    language_confidence: Mapped[float | None] = mapped_column(Float)
    redacted: Mapped[bool | None] = mapped_column(Boolean)
    redactions: Mapped[dict[str, int] | None] = mapped_column(JSON)
    event_time: Mapped[datetime] = mapped_column(TZ)
    event_date: Mapped[date] = mapped_column(Date)
    received_at: Mapped[datetime] = mapped_column(TZ)
    processed_at: Mapped[datetime] = mapped_column(TZ)
    written_at: Mapped[datetime] = mapped_column(TZ)
    # -- learning (revision 0009_models): the trained model's version, or the shipped analyzer's name
    sentiment_model: Mapped[str | None] = mapped_column(String(100))
    # -- trust (revision 0010_trust): who delivered the row; only the same origin may update it
    origin: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_feedback_event_time", "event_time"),
        Index("ix_feedback_event_date_source", "event_date", "source"),
        Index("ix_feedback_product", "product"),
        Index("ix_feedback_customer_ref", "customer_ref"),
        Index("ix_feedback_sentiment_label", "sentiment_label"),
    )


class FeedbackCategory(Base):
    """One row per feedback item x category, with the tagger's confidence."""

    __tablename__ = "feedback_categories"

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.feedback_id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    confidence: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_feedback_categories_category", "category"),)
