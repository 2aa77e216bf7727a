"""The record contract: the single source of truth for every topic, table and published JSON Schema.

Connectors produce :class:`FeedbackRecord`; processors produce :class:`EnrichedFeedback`; anything
that cannot be used becomes a :class:`DeadLetter`. The signal side (windows, alerts, incidents) and the
published JSON Schema files are in :mod:`pipeline.signal_schema`. Nothing else in the project redefines
these fields.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

#: Namespace of every ``feedback_id`` (UUIDv5 of ``source:source_ref``). Never change it: ids are
#: the Kafka key and the warehouse primary key, so a new namespace would duplicate every item.
FEEDBACK_NAMESPACE = uuid.UUID("6f1c0c2e-5b7a-5d0e-9a57-3c1f9b0e7d42")

Source = Literal["email", "webform", "ticket", "event"]
SentimentLabel = Literal["negative", "neutral", "positive"]
#: ``not_assessed``: the text is not in a language the analyzer supports (see ``detected_language``),
#: or there is no text at all (a score-only answer); it was deliberately not scored, so it must not
#: count as neutral in sentiment statistics.
SentimentLabelOrNone = Literal["negative", "neutral", "positive", "not_assessed"]
NpsClass = Literal["detractor", "passive", "promoter"]

MAX_TEXT_CHARS = 64 * 1024
#: Bound of ``FeedbackRecord.original_text`` (characters); keeps a record within a default Kafka message.
MAX_ORIGINAL_CHARS = 256 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


#: How far after its receipt a record's event_time may lie (clock skew between systems); the HTTP edge
#: answers 422 past it and the processor dead-letters (:func:`bounded_event_time`): never clamped.
MAX_FUTURE_EVENT = timedelta(minutes=5)


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (many exporters omit the offset); all are stored in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
ShortStr = Annotated[str, Field(max_length=500)]


#: Validation context for data copied from an already validated record (``model_validate(data,
#: context=COPIED_IDENTITY)``, as the processor's enrichment does): its ``feedback_id`` was derived or
#: checked when that record was validated, so it is not derived again. Client input never passes it.
COPIED_IDENTITY: dict[str, str] = {"feedback_id": "copied from a validated record"}


def derive_feedback_id(source: str, source_ref: str) -> uuid.UUID:
    """The deterministic identity of one feedback item: UUIDv5 of ``source:source_ref``.

    Total over every ``str``: text holding surrogates (undecodable bytes kept by ``surrogateescape``)
    is hashed by those bytes, so no input can make identity fail.
    """
    name = f"{source}:{source_ref}"
    if not name.isascii():
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return uuid.uuid5(FEEDBACK_NAMESPACE, name)


#: A ``customer_ref``: ``c_<key id>_<32 hex digits>``, or the earlier form without a key id.
CUSTOMER_REF_PATTERN = r"^c_(?:[0-9a-f]{8}_)?[0-9a-f]{32}$"


def customer_key_id(key: bytes) -> str:
    """The id of a customer-hash key in the references it makes: 8 hex digits of a SHA-256 of the key
    (a fingerprint, not the key), so a reference says which key made it and keys can be rotated."""
    return hashlib.sha256(b"feedback customer key id\x00" + key).hexdigest()[:8]


def _customer_digest(address: str, key: bytes) -> str:
    normalized = address.strip().lower().encode("utf-8", "surrogateescape")
    return hmac.new(key, normalized, hashlib.sha256).hexdigest()[:32]


def customer_ref(address: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256) of a customer's address, with the key's id: joinable across sources,
    not reversible."""
    return f"c_{customer_key_id(key)}_{_customer_digest(address, key)}"


def customer_refs(address: str, keys: list[bytes]) -> list[str]:
    """Every reference ``address`` may have been stored under: each key's, with and without key id."""
    found: list[str] = []
    for key in keys:
        digest = _customer_digest(address, key)
        found += [f"c_{customer_key_id(key)}_{digest}", f"c_{digest}"]
    return found


def nps_class(score: int | None) -> NpsClass | None:
    """Standard NPS buckets: 0-6 detractor, 7-8 passive, 9-10 promoter."""
    if score is None:
        return None
    if score <= 6:
        return "detractor"
    return "passive" if score <= 8 else "promoter"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=False)


#: The published schema's form of :meth:`FeedbackRecord._text_or_score`: a text, or one of the scores.
_TEXT_OR_SCORE: dict[str, Any] = {"anyOf": [
    {"required": ["text"], "properties": {"text": {"pattern": "\\S"}}},
    *[{"required": [k], "properties": {k: {"type": "integer"}}} for k in ("nps_score", "csat_score", "stars")],
]}


class FeedbackRecord(_Model):
    """One piece of customer feedback, as a connector hands it to the pipeline.

    Guarantees: ``feedback_id`` is always ``derive_feedback_id(source, source_ref)`` (a supplied id
    that disagrees is rejected), times are timezone-aware UTC, ratings are within their scales and
    ``text`` is at most 64 KiB characters and empty only when a score (NPS, CSAT or stars) is given.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_TEXT_OR_SCORE)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version.")
    feedback_id: uuid.UUID | None = Field(
        default=None, description="UUIDv5 of 'source:source_ref'; derived when omitted."
    )
    source: Source = Field(default="event", description="Kind of connector that produced the item.")
    channel: ShortStr | None = Field(default=None, description="Mailbox, form id, ticket system, ...")
    source_ref: str = Field(
        min_length=1, max_length=500, description="Stable id in the source system (Message-ID, ...)."
    )
    thread_ref: ShortStr | None = Field(default=None, description="Conversation / ticket it belongs to.")
    customer_ref: Annotated[ShortStr, Field(pattern=CUSTOMER_REF_PATTERN)] | None = Field(
        default=None, description="Keyed hash of the customer's address, never the address itself: "
        "c_<key id>_<32 hex digits> (pipeline.schema.customer_ref); anything else is refused."
    )
    subject: Annotated[str, Field(max_length=1000)] | None = None
    text: str = Field(
        default="", max_length=MAX_TEXT_CHARS,
        description="The customer's words; empty for a score-only answer (one with nps_score, csat_score "
        "or stars), which is counted in NPS/CSAT and has sentiment 'not_assessed' and no categories.")
    original_text: Annotated[str, Field(max_length=MAX_ORIGINAL_CHARS)] | None = Field(
        default=None,
        description="The input before the connector cut it down to `text`, e.g. an e-mail's whole body "
        "with quoted replies and signature (bounded; attributes.original_truncated says when cut). "
        "For audit and re-processing from the raw topic; not a warehouse column.",
    )
    language: Annotated[str, Field(max_length=35, pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")] | None = None
    nps_score: Annotated[int, Field(ge=0, le=10)] | None = Field(default=None, description="NPS 0-10.")
    csat_score: Annotated[int, Field(ge=1, le=5)] | None = Field(default=None, description="CSAT 1-5.")
    stars: Annotated[int, Field(ge=1, le=5)] | None = Field(default=None, description="Star rating 1-5.")
    product: ShortStr | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    attributes: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Source-specific attributes (ticket status, priority, ...)."
    )
    contact: Annotated[str, Field(max_length=2000, pattern=r"^gAAAAA[A-Za-z0-9_=-]+$")] | None = Field(
        default=None, repr=False, description="A consenting customer's address sealed under "
        "FEEDBACK_CONTACT_KEY (a Fernet token, never the address itself). The warehouse keeps it only in "
        "its `contacts` table, never in the feedback row or its attributes.")
    event_time: UtcDatetime = Field(
        default_factory=utcnow, description="When the customer gave the feedback."
    )
    received_at: UtcDatetime = Field(
        default_factory=utcnow, description="When the pipeline received it."
    )
    origin: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="Who delivered the record (e.g. 'event:<token name>'), set by the "
        "pipeline's edge, never by a client; None means `source`. A stored record is updated only by "
        "records of the same origin.")

    @field_validator("attributes")
    @classmethod
    def _small_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise ValueError("at most 50 attributes")
        for key, item in value.items():
            limit = TICKET_ATTRIBUTE_MAX_CHARS.get(key, 1000)
            if len(key) > 100 or (isinstance(item, str) and len(item) > limit):
                raise ValueError(f"attribute {key[:40]!r} is too long (at most {limit} characters)")
        return value

    @model_validator(mode="after")
    def _text_or_score(self) -> FeedbackRecord:
        if not self.text and self.nps_score is None and self.csat_score is None and self.stars is None:
            raise ValueError("a record needs a text or a score (nps_score, csat_score or stars)")
        return self

    @property
    def score_only(self) -> bool:
        """A score without words: counted in NPS/CSAT, never assessed for sentiment or categories."""
        return not self.text

    @model_validator(mode="after")
    def _ticket_key_bound(self) -> FeedbackRecord:
        if self.source == "ticket" and self.thread_ref and len(self.thread_ref) > MAX_TICKET_KEY_CHARS:
            raise ValueError(f"a ticket record's thread_ref is at most {MAX_TICKET_KEY_CHARS} characters")
        return self

    @model_validator(mode="after")
    def _identity(self, info: ValidationInfo) -> FeedbackRecord:
        if self.feedback_id is not None and info.context is COPIED_IDENTITY:
            return self  # copied from a record whose validation checked it (see COPIED_IDENTITY)
        derived = derive_feedback_id(self.source, self.source_ref)
        if self.feedback_id is None:
            self.feedback_id = derived
        elif self.feedback_id != derived:
            raise ValueError("feedback_id must be the UUIDv5 of 'source:source_ref' (omit it to derive it)")
        return self

    @property
    def key(self) -> bytes:
        """The Kafka key: the feedback id."""
        return str(self.feedback_id).encode()

    @property
    def is_ticket_state(self) -> bool:
        """A ticket-state record (``attributes.ticket_event == "state"``): a status/priority/tags/group
        change of a support ticket. It updates the warehouse's ``tickets`` table only; it is not
        customer feedback, so it gets no ``feedback`` row and must not count in feedback signals."""
        return self.source == "ticket" and self.attributes.get("ticket_event") == TICKET_STATE_EVENT


_R = TypeVar("_R", bound="FeedbackRecord")


def bounded_event_time(record: _R, now: datetime | None = None) -> _R:
    """``record``, or RecordError ``event_time_in_future`` when its event_time lies more than
    :data:`MAX_FUTURE_EVENT` after its ``received_at`` or after ``now`` (the checker's clock: a producer
    writing straight to the raw topic sets ``received_at`` itself). Such a record would move the signal
    watermark forward (current feedback would count as late) and escape the purge: it is refused,
    never clamped."""
    from pipeline.errors import RecordError

    limit = min(record.received_at, now or utcnow()) + MAX_FUTURE_EVENT
    if record.event_time > limit:
        raise RecordError("event_time_in_future", f"event_time {record.event_time.isoformat()} is more than "
                          f"{int(MAX_FUTURE_EVENT.total_seconds())} s after its receipt "
                          f"{min(record.received_at, now or utcnow()).isoformat()}")
    return record


#: ``attributes.ticket_event`` of a ticket-state record (see :attr:`FeedbackRecord.is_ticket_state`).
TICKET_STATE_EVENT = "state"
#: Bounds of the attributes that become columns of the warehouse's ``tickets`` table (their widths).
TICKET_ATTRIBUTE_MAX_CHARS = {"ticket_key": 100, "ticket_status": 100, "ticket_priority": 100,
                              "ticket_group": 500, "ticket_type": 100, "csat_raw": 100}
#: Bound of a ticket record's ``thread_ref`` (the ``tickets`` table's key).
MAX_TICKET_KEY_CHARS = 300


class Sentiment(_Model):
    """Sentiment of one text: polarity in [-1, 1], subjectivity in [0, 1], and a three-way label.

    Guarantees: ``label`` is ``not_assessed`` exactly when the text was not scored (unsupported
    language, or no text: a score-only answer); then ``score`` and ``confidence`` are ``None`` and
    polarity/subjectivity are 0.
    """

    polarity: float = Field(
        ge=-1.0, le=1.0, description="TextBlob's lexicon polarity (VADER's compound for 'vader').")
    subjectivity: float = Field(ge=0.0, le=1.0, description="TextBlob's lexicon subjectivity.")
    label: SentimentLabelOrNone = Field(
        description="negative|neutral|positive from the analyzer's calibrated neutral band; "
        "not_assessed for text in a language the analyzer does not support.")
    analyzer: str = Field(default="textblob", max_length=50,
                          description="Analyzer that produced it (ensemble|textblob|vader).")
    score: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="The analyzer's sentiment score in [-1, 1] (ensemble: P(positive) - P(negative)); "
        "the label is neutral when |score| is within the analyzer's neutral band.")
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="The analyzer's confidence in the label, in [0, 1].")
    model: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="Which model labelled it: a trained model's version "
        "(`feedback models list`), or the shipped analyzer's name; None before it was recorded.")


class CategoryTag(_Model):
    """One category the item belongs to, with the matcher's confidence in [0, 1]."""

    name: str = Field(min_length=1, max_length=100)
    confidence: float = Field(ge=0.0, le=1.0)


class Aspect(_Model):
    """One sentence of the text x one category it mentions, with that sentence's sentiment."""

    sentence: int = Field(ge=0, description="0-based index of the sentence in the (redacted) text.")
    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] = Field(description="The sentence (redacted).")
    category: str = Field(min_length=1, max_length=100, description="Category of the sentence ('other' if none).")
    confidence: float = Field(ge=0.0, le=1.0, description="Category confidence in [0, 1].")
    label: SentimentLabelOrNone = Field(description="Sentiment label of the sentence.")
    score: float | None = Field(default=None, ge=-1.0, le=1.0, description="Sentiment score of the sentence.")


class EnrichedFeedback(FeedbackRecord):
    """A feedback record after the processors: sentiment, categories and NPS class.

    Guarantees: ``categories`` is empty exactly when ``text`` is (a score-only answer, whose
    sentiment is ``not_assessed``); otherwise it holds at least one category (``other`` if none).

    Guarantees: ``text`` and ``subject`` carry no e-mail address, phone number, payment card number,
    IBAN or IP address (replaced by typed placeholders such as ``[EMAIL]``; ``redactions`` counts them).
    """

    sentiment: Sentiment
    categories: list[CategoryTag] = Field(default_factory=list)
    nps_class: NpsClass | None = None
    processed_at: UtcDatetime = Field(default_factory=utcnow)
    aspects: list[Aspect] = Field(
        default_factory=list, description="Per sentence x category: the category and its sentiment.")
    redacted: bool = Field(default=False, description="True when any PII was replaced by a placeholder.")
    redactions: dict[str, int] = Field(
        default_factory=dict, description="Placeholders inserted, by kind (email, phone, card, iban, ip).")
    detected_language: Annotated[str, Field(max_length=35)] | None = Field(
        default=None, description="ISO 639-1 code detected from the text; 'und' when undetermined.")
    language_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Confidence of detected_language, in [0, 1].")

    @model_validator(mode="after")
    def _categories_unless_score_only(self) -> EnrichedFeedback:
        if bool(self.text) != bool(self.categories):
            raise ValueError("categories must be given for a text and empty for a score-only answer")
        if not self.text and self.sentiment.label != "not_assessed":
            raise ValueError("a score-only answer's sentiment is 'not_assessed'")
        return self


class DeadLetter(_Model):
    """Input that could not be used, kept with the stage, the reason and the original payload.

    Guarantees: ``payload`` holds the original bytes exactly (UTF-8 text, or base64 when they are
    not valid UTF-8, as ``payload_encoding`` says), so a fixed record can be replayed.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)  # payloads are kept byte for byte

    schema_version: Literal[1] = SCHEMA_VERSION
    dead_letter_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    stage: ShortStr = Field(description="http, processor, sink, email, ...")
    reason: ShortStr = Field(description="Short machine-readable reason code.")
    detail: Annotated[str, Field(max_length=4000)] = ""
    source: ShortStr | None = None
    feedback_id: uuid.UUID | None = None
    topic: ShortStr | None = None
    partition: int | None = None
    offset: int | None = None
    payload: str = ""
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    occurred_at: UtcDatetime = Field(default_factory=utcnow)

    @classmethod
    def for_payload(cls, payload: bytes | str | None, **fields: Any) -> DeadLetter:
        """Build a dead letter that carries ``payload`` losslessly."""
        if payload is None:
            return cls(**fields)
        if isinstance(payload, str):
            return cls(payload=payload, payload_encoding="utf-8", **fields)
        try:
            return cls(payload=payload.decode("utf-8"), payload_encoding="utf-8", **fields)
        except UnicodeDecodeError:
            return cls(payload=base64.b64encode(payload).decode(), payload_encoding="base64", **fields)

    def key_bytes(self) -> bytes | None:
        """The Kafka key: the feedback id when it is known."""
        return str(self.feedback_id).encode() if self.feedback_id else None

    def original_bytes(self) -> bytes:
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")
