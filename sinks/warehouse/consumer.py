"""The warehouse sink: ``feedback.enriched`` -> the warehouse, on the kernel's sink runner.

:class:`WarehouseSink` is a :class:`~pipeline.sink_runner.Sink`: ``setup`` applies the migrations,
``write`` hands a batch to :meth:`WarehouseWriter.write_batch` (one transaction, an idempotent
upsert) and returns the records the database refused, with their reasons; the
:class:`~pipeline.sink_runner.SinkRunner` polls, dead-letters what cannot be decoded or was refused,
retries outages with backoff and commits the offsets only after the write.

Guarantees: an offset is committed only after the transaction holding its record committed
(at-least-once); the upsert makes redelivery harmless (nothing counted twice); a record that cannot
be decoded or that the warehouse refuses goes to ``feedback.dlq`` with its reason; a database
outage is retried with backoff without losing the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String, Text, Uuid, column, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from pipeline import metrics
from pipeline.config import SinkSettings
from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.retry import RetryPolicy
from pipeline.schema import EnrichedFeedback
from pipeline.sink_runner import KafkaInput, Rejected, Sink, SinkRunner, serve_until_stopped
from pipeline.topics import Topics, ensure_topics
from sinks.warehouse.db import explain, make_engine, migrate
from sinks.warehouse.ledger import ErasureLedger
from sinks.warehouse.writer import WarehouseWriter

log = get_logger(__name__)

GROUP_ID = "feedback-warehouse-sink"


class WarehouseSink(Sink[EnrichedFeedback]):
    """Enriched feedback into the warehouse. Guarantees: ``write`` is one transaction, idempotent
    (same records again: same rows); refused records come back as :class:`Rejected`, never raised;
    an unreachable, read-only or full database raises TransientError."""

    name = "sink"  # the dead letters' stage and the batch metrics' label, as before the runner
    label = "warehouse"
    model = EnrichedFeedback
    invalid_reason = "invalid_enriched_record"

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.writer = WarehouseWriter(self.engine)
        self.ledger = ErasureLedger(self.engine)  # erased customers, read once per batch (sinks/warehouse/ledger.py)

    def setup(self) -> None:
        """Migrations at start-up; a database that is down (or read-only) is waited for, not crashed on."""
        try:
            migrate(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise TransientError(explain(self.engine, exc), retry_after=None) from exc
        log.info("warehouse sink started", url=self.engine.url.render_as_string(hide_password=True))

    def decode(self, value: bytes) -> EnrichedFeedback:
        return EnrichedFeedback.model_validate_json(value)

    def write(self, items: Sequence[EnrichedFeedback]) -> list[Rejected]:
        kept = self.ledger.kept(items)  # an erased customer's records are dropped, counted, never written back
        result = self.writer.write_batch(kept)
        metrics.WRITTEN.labels("feedback").inc(result.written)
        position = {id(item): index for index, item in enumerate(items)}
        rejected = [Rejected(position[id(r.item)], r.reason, r.detail) for r in result.rejected]
        if rejected:  # rows the warehouse refused: the rest of the batch is written; these are dead-lettered
            log.warning("records rejected by the warehouse", count=len(rejected),
                        reasons=sorted({r.reason for r in rejected}))
        refused = {r.index for r in rejected}
        write_contacts(self.engine, [item for item in kept if position[id(item)] not in refused])
        now = datetime.now(UTC)
        for item in items:
            metrics.END_TO_END.observe(max(0.0, (now - item.received_at).total_seconds()))
            metrics.EVENT_TO_WRITE.observe(max(0.0, (now - item.event_time).total_seconds()))
        return rejected

    def error_kind(self, exc: TransientError) -> str:
        return error_kind(str(exc))

    def close(self) -> None:
        self.engine.dispose()


#: The ``contacts`` table (migration 0013; declared by ``sinks.followups.models``), as far as this sink writes it.
CONTACTS = table("contacts", column("feedback_id", Uuid()), column("customer_ref", String()),
                 column("address_encrypted", Text()), column("consented_at", DateTime(timezone=True)))


def write_contacts(engine: Engine, items: Sequence[EnrichedFeedback]) -> int:
    """Keep the sealed ``contact`` of each consenting item in ``contacts`` (never in ``feedback``).

    Idempotent: an item's contact is inserted once (its id is the key); redelivery changes nothing.
    A database error raises TransientError, so the runner writes the whole batch again.
    """
    rows = [{"feedback_id": i.feedback_id, "customer_ref": i.customer_ref, "address_encrypted": i.contact,
             "consented_at": i.received_at} for i in items if i.contact and not i.is_ticket_state]
    if not rows:
        return 0
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    try:
        with engine.begin() as conn:
            conn.execute(insert(CONTACTS).on_conflict_do_nothing(index_elements=["feedback_id"]), rows)
    except OperationalError as exc:
        raise TransientError(explain(engine, exc), retry_after=None) from exc
    metrics.WRITTEN.labels("contacts").inc(len(rows))
    return len(rows)


def error_kind(message: str) -> str:
    """A label for the sink-error counter, so an alert can say what to fix."""
    text = message.lower()
    if "disk is full" in text or "no space left" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text:
        return "read_only"
    return "unavailable"


def build(settings: SinkSettings) -> tuple[SinkRunner[EnrichedFeedback], Publisher]:
    """The warehouse sink on its runner, reading ``feedback.enriched`` in the sink's consumer group."""
    topic = Topics.from_settings(settings).enriched

    def open_input() -> KafkaInput:
        ensure_topics(settings)
        return KafkaInput(settings, topic, GROUP_ID, "feedback-warehouse-sink", settings.sink_batch_size)

    publisher = Publisher(settings, client_id="feedback-warehouse-sink-dlq")
    runner = SinkRunner(WarehouseSink(settings), open_input, publisher, batch_size=settings.sink_batch_size,
                        batch_ms=settings.sink_batch_ms,
                        retry=RetryPolicy(first=0.5, maximum=settings.sink_max_backoff_seconds))
    return runner, publisher


def run(settings: SinkSettings) -> None:
    runner, publisher = build(settings)
    serve_until_stopped(runner, publisher, settings, settings.sink_metrics_port)  # /readyz: migrated, consuming
