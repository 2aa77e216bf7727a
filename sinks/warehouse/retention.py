"""Retention (``feedback purge --older-than 400d``) and right to erasure (``feedback erase``).

Both run in one transaction, write one ``retention_log`` row and one structured log line, and
count what they deleted per table (``--dry-run`` rolls the transaction back after counting).

What is personal here, and what each action does with it (checked table by table):

- ``feedback`` (text, customer_ref) and every table keyed by ``feedback_id`` (categories, aspects,
  whatever a later revision adds): rows of the customer's feedback are deleted, children first;
- ``tickets`` (subject, CSAT comment, customer_ref): the customer's tickets are deleted, and so is
  all feedback of those ticket threads (agent replies quote the customer);
- ``customers``: the row is deleted (purge: recomputed, deleted when no feedback is left);
- every other table with a ``customer_ref`` column is swept as well;
- ``signal_windows``, ``alerts``, ``alert_history``, ``alert_deliveries``: aggregates (counts, means,
  detector summaries) that hold no customer reference or text; they are kept.

Erasure writes the customer's reference (the keyed hash, never the address) in one place only: the
erasure ledger (:mod:`sinks.warehouse.ledger`), which the warehouse sink and DLQ replay check so that
records still in Kafka are not written back. The log row says ``customer_ref=<erased>``; the structured
log line carries the keyed hash so the request can be traced in the operator's logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, bindparam, inspect, text

from pipeline import metrics
from pipeline.logging import get_logger
from sinks.warehouse.analytics import RetentionLog, refresh_customers
from sinks.warehouse.ledger import record_erased


@dataclass
class RetentionResult:
    """What one purge or erasure deleted (or would delete, for a dry run), per table."""

    action: str
    criteria: str
    deleted: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ledgered: int = 0  # customer references added to the erasure ledger

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "criteria": self.criteria, "deleted": dict(self.deleted),
                "total": self.total, "dry_run": self.dry_run, "at": self.at.isoformat(),
                **({"ledgered": self.ledgered} if self.action == "erase" else {})}


def _typed(sql: str) -> Any:
    """``text(sql)`` with ``:cutoff`` bound as a timestamp (stored the way the columns store it)."""
    return text(sql).bindparams(bindparam("cutoff", type_=DateTime(timezone=True)))


def _tables(conn: Connection) -> dict[str, set[str]]:
    insp = inspect(conn)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}


def _add(result: RetentionResult, table: str, count: int) -> None:
    if count:
        result.deleted[table] = result.deleted.get(table, 0) + count


def _delete_feedback(conn: Connection, tables: dict[str, set[str]], where: str, params: dict[str, Any],
                     result: RetentionResult) -> None:
    """Delete the feedback rows matching ``where`` (SQL over ``feedback``) and every row keyed by them."""
    ids = f"SELECT feedback_id FROM feedback WHERE {where}"
    for table, cols in sorted(tables.items()):
        if table != "feedback" and "feedback_id" in cols:
            _add(result, table, conn.execute(_typed(f"DELETE FROM {table} WHERE feedback_id IN ({ids})"),
                                             params).rowcount)
    _add(result, "feedback", conn.execute(_typed(f"DELETE FROM feedback WHERE {where}"), params).rowcount)


def _log_row(conn: Connection, result: RetentionResult, actor: str | None) -> None:
    log_table: Any = RetentionLog.__table__
    conn.execute(log_table.insert().values(
        action=result.action, criteria=result.criteria, deleted=result.deleted, actor=actor,
        dry_run=result.dry_run, at=result.at))


def _finish(engine: Engine, conn: Connection, tx: Any, result: RetentionResult, actor: str | None,
            log_fields: dict[str, Any]) -> RetentionResult:
    """Log the run; a real run's log row commits with its deletes, a dry run's after the rollback."""
    if result.dry_run:
        tx.rollback()
        with engine.begin() as log_conn:
            _log_row(log_conn, result, actor)
    else:
        _log_row(conn, result, actor)
    for table, count in result.deleted.items():
        if not result.dry_run:
            metrics.RETENTION_DELETED.labels(result.action, table).inc(count)
    get_logger(__name__).info(f"{result.action} {'dry run' if result.dry_run else 'done'}", action=result.action,
             criteria=result.criteria, deleted=result.deleted, total=result.total, dry_run=result.dry_run,
             actor=actor, **log_fields)
    return result


def purge(engine: Engine, older_than: timedelta, *, actor: str | None = None, dry_run: bool = False,
          now: datetime | None = None) -> RetentionResult:
    """Delete feedback whose event time is older than ``older_than``, and tickets last changed before that."""
    cutoff = (now or datetime.now(UTC)) - older_than
    result = RetentionResult("purge", f"older_than={older_than.days}d cutoff={cutoff.isoformat()}", dry_run=dry_run)
    with engine.connect() as conn, conn.begin() as tx:
        tables = _tables(conn)
        params = {"cutoff": cutoff}
        where = "event_time < :cutoff"
        refs = conn.execute(_typed(f"SELECT DISTINCT customer_ref FROM feedback WHERE {where} "
                                   "AND customer_ref IS NOT NULL"), params).scalars().all()
        _delete_feedback(conn, tables, where, params, result)
        if "tickets" in tables:
            _add(result, "tickets", conn.execute(_typed(
                "DELETE FROM tickets WHERE COALESCE(state_at, written_at) < :cutoff"), params).rowcount)
        if "customers" in tables and refs:
            before = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
            refresh_customers(conn, [{"customer_ref": r} for r in refs], prune=True)
            _add(result, "customers", before - conn.execute(text("SELECT count(*) FROM customers")).scalar_one())
        _finish(engine, conn, tx, result, actor, {"cutoff": cutoff.isoformat()})
    return result


def erase(engine: Engine, customer_refs: Sequence[str], *, actor: str | None = None,
          dry_run: bool = False) -> RetentionResult:
    """Delete everything the warehouse holds about the customers ``customer_refs`` (keyed hashes)."""
    result = RetentionResult("erase", "customer_ref=<erased>", dry_run=dry_run)
    refs = sorted({r for r in customer_refs if r})
    if not refs:
        raise ValueError("no customer reference to erase")
    with engine.connect() as conn, conn.begin() as tx:
        tables = _tables(conn)
        params: dict[str, Any] = {"refs": refs}
        in_refs: Any = bindparam("refs", expanding=True)
        threads: list[str] = []
        if "tickets" in tables:
            threads = list(conn.execute(text("SELECT ticket_key FROM tickets WHERE customer_ref IN :refs")
                                        .bindparams(in_refs), params).scalars())
        where = "customer_ref IN :refs" + (" OR thread_ref IN :threads" if threads else "")
        stmt_params = {**params, "threads": threads} if threads else params
        _delete_feedback_expanding(conn, tables, where, stmt_params, result)
        if "erasure_ledger" in tables:  # so nothing writes them back from Kafka (sink, DLQ replay)
            result.ledgered = record_erased(conn, refs)
        for table, cols in sorted(tables.items()):
            if table != "feedback" and "customer_ref" in cols:
                _add(result, table, conn.execute(
                    text(f"DELETE FROM {table} WHERE customer_ref IN :refs").bindparams(in_refs), params).rowcount)
        _finish(engine, conn, tx, result, actor, {"customer_refs": refs, "ticket_threads": len(threads)})
    return result


def _delete_feedback_expanding(conn: Connection, tables: dict[str, set[str]], where: str,
                               params: dict[str, Any], result: RetentionResult) -> None:
    binds: list[Any] = [bindparam(k, expanding=True) for k in params]

    def run(sql: str) -> int:
        return conn.execute(text(sql).bindparams(*binds), params).rowcount

    ids = f"SELECT feedback_id FROM feedback WHERE {where}"
    for table, cols in sorted(tables.items()):
        if table != "feedback" and "feedback_id" in cols:
            _add(result, table, run(f"DELETE FROM {table} WHERE feedback_id IN ({ids})"))
    _add(result, "feedback", run(f"DELETE FROM feedback WHERE {where}"))
