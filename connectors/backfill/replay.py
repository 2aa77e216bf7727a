"""``feedback replay --from-dlq``: send fixed dead letters back into the pipeline.

How an operator fixes a dead letter, two ways:

1. Fix the cause (a processor bug, a taxonomy, a schema mismatch of a producer that has since been
   corrected) and replay: a letter whose original payload *now validates* is sent again;
2. Fix the payload: ``--export dead.jsonl`` writes the matching letters, one JSON object per line
   (``dead_letter_id``, ``stage``, ``reason``, ``detail``, ``payload``); edit ``payload`` into a
   valid record and pass the file back with ``--fixes dead.jsonl``: a fixed payload replaces the
   original of that letter.

A payload that validates as a :class:`~pipeline.schema.FeedbackRecord` goes to ``feedback.raw``; one
that validates as an :class:`~pipeline.schema.EnrichedFeedback` (a sink-stage letter) goes to
``feedback.enriched``. Anything else stays where it is and is reported with its validation error.

Guarantees: the DLQ is only read (never consumed by a group, never changed); of several letters of
one feedback id only the newest is replayed; a letter whose feedback id is already in the
warehouse is skipped as ``already_written``; replaying twice is harmless (ids are deterministic,
the warehouse upserts). ``--dry-run`` sends nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from pipeline import metrics
from pipeline.config import CommonSettings
from pipeline.errors import ConfigError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher, encode
from pipeline.schema import DeadLetter, EnrichedFeedback, FeedbackRecord
from pipeline.topics import Topics

from .importer import WarehouseIds


def read_dead_letters(settings: CommonSettings, idle_seconds: float = 3.0, max_seconds: float = 300.0
                      ) -> Iterator[DeadLetter | tuple[str, bytes]]:
    """Every letter on the DLQ from the beginning to the end offsets seen at the start.

    A message that is not a DeadLetter is yielded as ``("unreadable", raw bytes)``. Stops at the end
    offsets, or after ``idle_seconds`` without a message (the embedded broker's end offsets are not
    reliable for batches).
    """
    topic = Topics.from_settings(settings).dlq
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="feedback-replay", **settings.kafka_client_options())
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            return
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + max_seconds
        last_message = time.monotonic()
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                if time.monotonic() - last_message > idle_seconds:
                    break
                continue
            last_message = time.monotonic()
            for messages in batch.values():
                for msg in messages:
                    try:
                        yield DeadLetter.model_validate_json(msg.value)
                    except ValidationError:
                        yield ("unreadable", msg.value)
    finally:
        consumer.close()


def load_fixes(path: Path) -> dict[uuid.UUID, str]:
    """``dead_letter_id`` -> fixed payload, from a JSONL file as ``--export`` writes it."""
    fixes: dict[uuid.UUID, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            payload = item["payload"]
            fixes[uuid.UUID(str(item["dead_letter_id"]))] = (
                payload if isinstance(payload, str) else json.dumps(payload))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: expected {{'dead_letter_id': ..., 'payload': ...}} ({exc})") from None
    return fixes


@dataclass
class ReplaySummary:
    """Counts of one replay run; ``invalid`` keeps the first validation error of each letter not replayed."""

    read: int = 0
    matched: int = 0
    replayed: int = 0
    still_invalid: int = 0
    already_written: int = 0
    superseded: int = 0
    erased: int = 0
    exported: int = 0
    dry_run: bool = False
    invalid: list[dict[str, str]] = field(default_factory=list)
    by_stage: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "matched": self.matched, "replayed": self.replayed,
                "still_invalid": self.still_invalid, "already_written": self.already_written,
                "superseded": self.superseded, "erased": self.erased, "exported": self.exported,
                "dry_run": self.dry_run,
                "by_stage": dict(self.by_stage)}


def _target(payload: str, topics: Topics) -> tuple[str, FeedbackRecord] | str:
    """(topic, record) for a payload that validates now, else the validation error."""
    try:
        return topics.raw, FeedbackRecord.model_validate_json(payload)
    except ValidationError as exc:
        first = exc
    try:
        return topics.enriched, EnrichedFeedback.model_validate_json(payload)
    except ValidationError:
        err = first.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"


def select(letters: Iterable[DeadLetter | tuple[str, bytes]], stage: Iterable[str] = (),
           reason: Iterable[str] = (), since: datetime | None = None,
           summary: ReplaySummary | None = None) -> list[DeadLetter]:
    """The letters matching the filters (newest per feedback id; letters without an id all kept)."""
    stages, reasons = set(stage), set(reason)
    summary = summary or ReplaySummary()
    newest: dict[Any, DeadLetter] = {}
    for letter in letters:
        summary.read += 1
        if not isinstance(letter, DeadLetter):
            continue
        if (stages and letter.stage not in stages) or (reasons and letter.reason not in reasons):
            continue
        if since is not None and letter.occurred_at < since:
            continue
        summary.matched += 1
        key = letter.feedback_id or letter.dead_letter_id
        old = newest.get(key)
        if old is not None:
            summary.superseded += 1
            if old.occurred_at > letter.occurred_at:
                continue
        newest[key] = letter
    return list(newest.values())


def replay(settings: CommonSettings, letters: list[DeadLetter], fixes: dict[uuid.UUID, str] | None = None,
           publisher: Publisher | None = None, known: WarehouseIds | None = None,
           export: Path | None = None, summary: ReplaySummary | None = None) -> ReplaySummary:
    """Re-send the letters whose payload (or fix) validates; ``publisher=None`` is a dry run."""
    summary = summary or ReplaySummary()
    summary.dry_run = publisher is None
    topics = Topics.from_settings(settings)
    fixes = fixes or {}
    if export is not None:
        with export.open("w") as fh:
            for letter in letters:
                fh.write(json.dumps({"dead_letter_id": str(letter.dead_letter_id), "stage": letter.stage,
                                     "reason": letter.reason, "detail": letter.detail,
                                     "feedback_id": str(letter.feedback_id) if letter.feedback_id else None,
                                     "occurred_at": letter.occurred_at.isoformat(),
                                     "payload": fixes.get(letter.dead_letter_id) or _payload_text(letter)}) + "\n")
                summary.exported += 1
    sends: dict[str, list[tuple[bytes | None, bytes]]] = {}
    candidates: list[tuple[DeadLetter, str, FeedbackRecord]] = []
    for letter in letters:
        payload = fixes.get(letter.dead_letter_id) or _payload_text(letter)
        target = _target(payload, topics)
        if isinstance(target, str):
            summary.still_invalid += 1
            metrics.REPLAYED.labels("still_invalid").inc()
            summary.invalid.append({"dead_letter_id": str(letter.dead_letter_id), "stage": letter.stage,
                                    "reason": letter.reason, "error": target})
            continue
        candidates.append((letter, *target))
    written = known.existing(r.feedback_id for _, _, r in candidates) if known else set()  # type: ignore[misc]
    erased = known.erased(r.customer_ref for _, _, r in candidates) if known else set()
    for letter, topic, record in candidates:
        if record.customer_ref in erased:  # `feedback erase` ran for this customer: never brought back
            summary.erased += 1
            metrics.REPLAYED.labels("erased").inc()
            metrics.ERASED_DROPPED.labels("replay").inc()
            continue
        if record.feedback_id in written:
            summary.already_written += 1
            metrics.REPLAYED.labels("already_written").inc()
            continue
        sends.setdefault(topic, []).append((record.key, encode(record)))
        summary.by_stage[letter.stage] += 1
    for topic, items in sends.items():
        if publisher is not None:
            publisher.publish_bytes(topic, items)
        summary.replayed += len(items)
        metrics.REPLAYED.labels("replayed" if publisher else "would_replay").inc(len(items))
    get_logger(__name__).info("replay done", **summary.as_dict())
    return summary


def _payload_text(letter: DeadLetter) -> str:
    try:
        return letter.original_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return letter.payload  # base64 text: never validates, but can be exported and fixed
