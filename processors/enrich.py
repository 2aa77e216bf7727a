"""The enrichment step as plain functions: raw bytes -> FeedbackRecord -> EnrichedFeedback.

Unit-tested without Kafka; the faust agent only calls these.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import ValidationError

from pipeline.errors import RecordError
from pipeline.schema import EnrichedFeedback, FeedbackRecord, nps_class
from processors import sentiment
from processors.taxonomy import Taxonomy

# Zero-width and other format characters that render as nothing.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")


def parse_raw(value: bytes) -> FeedbackRecord:
    """Decode and validate one raw-topic value; RecordError (for the DLQ) when it is unusable."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError("malformed_json", str(exc)[:500]) from exc
    if not isinstance(data, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    try:
        return FeedbackRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError("schema_violation", _summarize(exc)) from exc


def _summarize(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}" for e in exc.errors()[:10]
    )[:2000]


def normalize_text(text: str) -> str:
    """NFC, invisible characters removed, runs of blanks folded (line breaks kept)."""
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", text))
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def content_hash(record: FeedbackRecord) -> str:
    """Identity of the content, ignoring when it was received (a re-post is the same content)."""
    body = record.model_dump_json(exclude={"received_at"})
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


@dataclass
class Enricher:
    """Turns a valid record into an enriched one. Raises RecordError for content it cannot use."""

    taxonomy: Taxonomy
    neutral_band: float = 0.1

    def enrich(self, record: FeedbackRecord) -> EnrichedFeedback:
        text = normalize_text(record.text)
        if not text:
            raise RecordError("empty_text", "the text holds no visible characters")
        data = record.model_dump()
        data["text"] = text
        return EnrichedFeedback(
            **data,
            sentiment=sentiment.analyze(text, self.neutral_band),
            categories=self.taxonomy.tag(f"{record.subject or ''}\n{text}"),
            nps_class=nps_class(record.nps_score),
        )


class RecentSet:
    """Bounded memory of recently seen keys (LRU), for dropping exact re-deliveries.

    Each key lives on one partition and so on one worker; after a restart the memory is empty and
    the warehouse's idempotent upsert absorbs what this no longer catches.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen recently; remembers it either way."""
        if self.capacity <= 0:
            return False
        if key in self._items:
            self._items.move_to_end(key)
            return True
        self._items[key] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return False
