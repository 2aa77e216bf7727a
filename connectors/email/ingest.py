"""The one path from raw messages to the broker, shared by the IMAP connector and the mbox import.

Guarantees: :meth:`Ingestor.ingest` returns only after the broker acknowledged every record and
every dead letter of the batch (so a caller may advance its checkpoint afterwards); every message
is accounted for exactly once in the returned :class:`Summary` (published, skipped, dead-lettered
or duplicate); skipped and unusable messages reach the DLQ with their reason and raw bytes.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from connectors.email.parse import SOURCE, Outcome, ParseOptions, parse_message
from pipeline import metrics
from pipeline.logging import get_logger
from pipeline.schema import DeadLetter, FeedbackRecord

log = get_logger(__name__)

#: Raw bytes kept in a dead letter (base64 makes them 4/3 larger; a Kafka message stays < 1 MB).
DLQ_PAYLOAD_BYTES = 512 * 1024
_DLQ_NAMESPACE = uuid.UUID("0b7e3c52-3f7e-5a0c-8a51-6e2f0d9c4a11")


@dataclass
class RawMail:
    """One message as read from a mailbox or an archive."""

    raw: bytes
    internaldate: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    location: str = ""
    partial: bool = False
    full_size: int | None = None


@dataclass
class Summary:
    """Counts that always add up: read = published + skipped + dead_lettered + duplicates."""

    read: int = 0
    published: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    dead_lettered_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def add(self, other: Summary) -> None:
        self.read += other.read
        self.published += other.published
        self.dead_lettered += other.dead_lettered
        self.duplicates += other.duplicates
        self.skipped_by_reason.update(other.skipped_by_reason)
        self.dead_lettered_by_reason.update(other.dead_lettered_by_reason)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "published": self.published, "skipped": self.skipped,
                "dead_lettered": self.dead_lettered, "duplicates": self.duplicates,
                "skipped_by_reason": dict(sorted(self.skipped_by_reason.items()))}


@dataclass
class Prepared:
    """A parsed batch: the records and dead letters to publish, and what became of each message."""

    summary: Summary
    records: list[FeedbackRecord] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    ids: set[uuid.UUID] = field(default_factory=set)


class Sink(Protocol):
    def publish(self, records: Sequence[FeedbackRecord], timeout: float = ...) -> None: ...
    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = ...) -> None: ...


class KnownIds(Protocol):
    def known(self, ids: Any) -> set[uuid.UUID]: ...


def dead_letter(mail: RawMail, outcome: Outcome) -> DeadLetter:
    """A dead letter carrying the raw message (base64, bounded) and where it came from."""
    raw = mail.raw
    detail = outcome.detail
    if mail.location:
        detail = f"{detail} [{mail.location}]"
    if len(raw) > DLQ_PAYLOAD_BYTES or mail.partial:
        detail += f" (payload: first {min(len(raw), DLQ_PAYLOAD_BYTES)} of {mail.full_size or len(raw)} bytes)"
        raw = raw[:DLQ_PAYLOAD_BYTES]
    return DeadLetter(
        # the same message and reason always give the same id, so an auditor can drop re-deliveries
        dead_letter_id=uuid.uuid5(_DLQ_NAMESPACE, f"{outcome.feedback_id}:{outcome.reason}"),
        stage="email", reason=outcome.reason, detail=detail[:4000], source=SOURCE,
        feedback_id=outcome.feedback_id, payload=base64.b64encode(raw).decode(), payload_encoding="base64",
    )


class Ingestor:
    """Parses batches of :class:`RawMail` and publishes them (records, then dead letters)."""

    def __init__(self, options: ParseOptions, publisher: Sink, known: KnownIds | None = None,
                 channel: str | None = None, remember: int = 100_000) -> None:
        self.options = options
        self.publisher = publisher
        self.known = known
        self.channel = channel
        self.remember = remember
        self._seen: set[uuid.UUID] = set()

    def parse(self, mails: Sequence[RawMail]) -> list[Outcome]:
        return [parse_message(m.raw, self.options, internaldate=m.internaldate, channel=self.channel,
                              attributes=m.attributes, partial=m.partial) for m in mails]

    def ingest(self, mails: Sequence[RawMail]) -> Summary:
        """Parse, drop already-known ids, publish; returns after the broker's acks."""
        prepared = self.prepare(mails)
        if prepared.records:
            self.publisher.publish(prepared.records)
        if prepared.letters:
            self.publisher.dead_letter(prepared.letters)
        self.finish(prepared)
        return prepared.summary

    def prepare(self, mails: Sequence[RawMail]) -> Prepared:
        """Parse and sort a batch into records and dead letters, publishing nothing (a source's batch)."""
        outcomes = self.parse(mails)
        summary = Summary(read=len(mails))
        candidates = [o.feedback_id for o in outcomes if o.kind == "record"]
        known = self.known.known(candidates) if self.known and candidates else set()
        prepared = Prepared(summary=summary)
        for mail, outcome in zip(mails, outcomes, strict=True):
            if outcome.kind == "record":
                fid = outcome.feedback_id
                if fid in known or fid in self._seen or fid in prepared.ids:
                    summary.duplicates += 1
                    continue
                prepared.ids.add(fid)
                assert outcome.record is not None
                prepared.records.append(outcome.record)
                continue
            prepared.letters.append(dead_letter(mail, outcome))
            if outcome.kind == "skipped":
                summary.skipped_by_reason[outcome.reason] += 1
            else:
                summary.dead_lettered += 1
                summary.dead_lettered_by_reason[outcome.reason] += 1
                log.warning("unusable e-mail dead-lettered", reason=outcome.reason, detail=outcome.detail[:300],
                            location=mail.location)
        summary.published = len(prepared.records)
        return prepared

    def finish(self, prepared: Prepared) -> None:
        """After the broker acknowledged a prepared batch: remember its ids and count it."""
        self._remember(prepared.ids)
        self._count(prepared.summary)

    def _remember(self, ids: set[uuid.UUID]) -> None:
        if len(self._seen) + len(ids) > self.remember:
            self._seen.clear()
        self._seen |= ids

    @staticmethod
    def _count(summary: Summary) -> None:
        metrics.RECEIVED.labels(SOURCE).inc(summary.read)
        metrics.ACCEPTED.labels(SOURCE).inc(summary.published)
        for reason, n in (summary.skipped_by_reason + summary.dead_lettered_by_reason).items():
            metrics.REJECTED.labels(SOURCE, reason).inc(n)
        metrics.EMAIL_MESSAGES.labels("published").inc(summary.published)
        metrics.EMAIL_MESSAGES.labels("skipped").inc(summary.skipped)
        metrics.EMAIL_MESSAGES.labels("dead_lettered").inc(summary.dead_lettered)
        metrics.EMAIL_MESSAGES.labels("duplicate").inc(summary.duplicates)
