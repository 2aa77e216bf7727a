"""The signal side of the record contract: closed windows, alerts and incidents; and the published
JSON Schema files of every contract model.

The processor's signal agents emit :class:`SignalWindow`; the alert sink's detector keeps :class:`Alert`
and groups alerts into an :class:`Incident`. Field types and bounds are shared with
:mod:`pipeline.schema` (the feedback record), so a column and its model field cannot disagree.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pipeline.schema import (
    SCHEMA_VERSION,
    DeadLetter,
    EnrichedFeedback,
    FeedbackRecord,
    ShortStr,
    UtcDatetime,
    _Model,
    utcnow,
)


class Alert(_Model):
    """A degrading-signal alert and its lifecycle state, keyed by ``alert_id``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: uuid.UUID
    signal: Annotated[str, Field(max_length=50)]
    scope_type: Literal["overall", "source", "category", "product", "channel"]
    scope_value: ShortStr
    status: Literal["open", "acknowledged", "resolved"]
    severity: Literal["info", "warning", "critical"]
    window_start: UtcDatetime
    window_end: UtcDatetime
    observed: float
    expected: float
    opened_at: UtcDatetime
    resolved_at: UtcDatetime | None = None
    summary: Annotated[str, Field(max_length=2000)]
    # -- lifecycle event carried on feedback.alerts (one message per event; all optional) --------
    event: Literal["opened", "updated", "escalated", "acknowledged", "resolved", "note"] | None = Field(
        default=None, description="What happened to the alert in this message.")
    event_id: uuid.UUID | None = Field(default=None, description="Idempotency key of this event.")
    event_at: UtcDatetime | None = None
    actor: ShortStr | None = Field(default=None, description="'detector' or the operator who acted.")
    note: Annotated[str, Field(max_length=2000)] | None = None
    first_window_start: UtcDatetime | None = Field(default=None, description="Window that opened the alert.")
    sample_size: int | None = Field(default=None, ge=0, description="Responses in the latest window.")
    z_score: float | None = Field(default=None, description="Standardized deviation of the latest window.")
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: ShortStr | None = None
    incident_id: uuid.UUID | None = Field(default=None, description="The incident this alert belongs to.")


class Incident(_Model):
    """One problem: the alerts that share a cause, its driver, its start in event time and examples.

    Guarantees: ``incident_id`` is stable (a UUIDv5 of the alert that opened it, so a replay opens the
    same incident); ``alerts`` lists every member alert id; ``explained_share`` is the share of the
    rise in negative responses overall that the driver scope accounts for (None when not measurable);
    ``examples`` are redacted texts from the out-of-control period of the driver scope.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    incident_id: uuid.UUID
    kind: Literal["signal", "emerging_theme"] = "signal"
    status: Literal["open", "acknowledged", "resolved"]
    severity: Literal["info", "warning", "critical"]
    driver_scope_type: Annotated[str, Field(max_length=16)]  # overall, source, category, product, channel, theme
    driver_scope_value: ShortStr
    signals: list[ShortStr] = Field(default_factory=list)
    explained_share: float | None = Field(default=None, ge=0, le=1)
    started_at: UtcDatetime
    opened_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: ShortStr | None = None
    observed: float | None = None
    expected: float | None = None
    sample_size: int | None = Field(default=None, ge=0, description="Responses of the driver since started_at.")
    summary: Annotated[str, Field(max_length=4000)]
    alerts: list[uuid.UUID] = Field(default_factory=list)
    examples: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list)
    event: Literal["opened", "reopened", "updated", "escalated", "acknowledged", "resolved", "note",
                   "test"] | None = None
    event_id: uuid.UUID | None = None
    event_at: UtcDatetime | None = None
    actor: ShortStr | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None


class SignalWindow(_Model):
    """One closed event-time window of one scope (topic ``feedback.signals``, table ``signal_windows``).

    Guarantees: counts are of distinct feedback ids whose ``event_time`` lies in
    ``[window_start, window_end)``; ``window_id`` is a UUIDv5 of scope and window, so a re-emitted
    window has the same id; shares and means are ``None`` when nothing was there to average.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    window_id: uuid.UUID
    scope_type: Literal["overall", "source", "category", "product", "channel"]
    scope_value: ShortStr
    window_start: UtcDatetime
    window_end: UtcDatetime
    window_seconds: int = Field(gt=0)
    volume: int = Field(ge=0)
    negative: int = Field(ge=0)
    neutral: int = Field(ge=0)
    positive: int = Field(ge=0)
    negative_share: float | None = Field(default=None, ge=0, le=1)
    sentiment_mean: float | None = Field(default=None, ge=-1, le=1)
    sentiment_std: float | None = Field(default=None, ge=0, description="Population standard deviation.")
    nps_responses: int = Field(default=0, ge=0)
    promoters: int = Field(default=0, ge=0)
    detractors: int = Field(default=0, ge=0)
    nps: float | None = Field(default=None, ge=-100, le=100, description="Promoters minus detractors, in %.")
    csat_responses: int = Field(default=0, ge=0)
    csat_mean: float | None = Field(default=None, ge=1, le=5)
    csat_std: float | None = Field(default=None, ge=0)
    closed_at: UtcDatetime = Field(default_factory=utcnow)

    def key_bytes(self) -> bytes:
        """The Kafka key: the scope, so one scope's windows stay in order on one partition."""
        return f"{self.scope_type}:{self.scope_value}".encode()


#: The published JSON Schema files, by file name.
PUBLISHED_MODELS: dict[str, type[BaseModel]] = {
    "feedback-record.schema.json": FeedbackRecord,
    "enriched-feedback.schema.json": EnrichedFeedback,
    "dead-letter.schema.json": DeadLetter,
    "alert.schema.json": Alert,
    "signal-window.schema.json": SignalWindow,
}


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("description", (model.__doc__ or "").strip())
    return schema


def write_json_schemas(out_dir: Path) -> list[Path]:
    """Write the JSON Schema files outside producers validate against; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in PUBLISHED_MODELS.items():
        path = out_dir / name
        path.write_text(json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
