"""Benchmark stage ``sink-write``: warehouse write throughput of the sink, bulk path vs one row at a time.

The same deterministic enriched records (:func:`~tests.bench.warehouse_samples.enriched_sample`) are
written into a fresh SQLite file and a fresh PostgreSQL schema, twice each in the same run:

- **bulk** (what the sink runs): :class:`~sinks.warehouse.writer.WarehouseWriter` batches of
  ``FEEDBACK_SINK_BATCH_SIZE`` (1000): one transaction per batch; COPY into a staging table and one
  ``INSERT ... SELECT ... ON CONFLICT`` on PostgreSQL, one prepared ``executemany`` on SQLite; the
  categories, the aspects and the customers table in the same transaction;
- **baseline**, one row at a time: the same batches and transactions, but one ``INSERT ... ON
  CONFLICT`` statement per feedback row and one statement per category and aspect row (the naive sink).

Rows/s is records written divided by wall time, record decoding excluded (records are built before
timing). PostgreSQL is ``FEEDBACK_BENCH_PG_DSN`` (default the test database on 127.0.0.1:5432); it is
skipped with a note when unreachable.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, event, insert, text

from pipeline.schema import EnrichedFeedback
from sinks.warehouse.analytics import refresh_customers
from sinks.warehouse.db import make_engine, migrate
from sinks.warehouse.enrichment import FeedbackAspect, aspect_rows
from sinks.warehouse.models import FeedbackCategory
from sinks.warehouse.writer import WarehouseWriter, feedback_row
from tests.bench.core import BenchContext, Result, stage
from tests.bench.warehouse_samples import enriched_sample

TARGETS = {"sqlite": 20_000.0, "postgresql": 10_000.0}
BATCH = 1000
PG_DSN = os.environ.get("FEEDBACK_BENCH_PG_DSN",
                        os.environ.get("FEEDBACK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))


def write_one_at_a_time(engine: Engine, items: Sequence[EnrichedFeedback]) -> None:
    """The baseline: the sink's batches and transactions, one statement per row."""
    writer = WarehouseWriter(engine)
    stmt = writer._upsert_stmt()
    for i in range(0, len(items), BATCH):
        batch = items[i : i + BATCH]
        now = datetime.now(UTC)
        rows = [feedback_row(item, now) for item in batch]
        with engine.begin() as conn:
            for item, row in zip(batch, rows, strict=True):
                conn.execute(stmt, row)
                conn.execute(delete(FeedbackCategory).where(FeedbackCategory.feedback_id == item.feedback_id))
                for n, cat in enumerate(item.categories):
                    conn.execute(insert(FeedbackCategory), {"feedback_id": item.feedback_id, "category": cat.name,
                                                            "confidence": cat.confidence, "rank": n})
                conn.execute(delete(FeedbackAspect).where(FeedbackAspect.feedback_id == item.feedback_id))
                for aspect in aspect_rows([item]):
                    conn.execute(insert(FeedbackAspect), aspect)
            refresh_customers(conn, rows)


def write_bulk(engine: Engine, items: Sequence[EnrichedFeedback]) -> None:
    writer = WarehouseWriter(engine)
    for i in range(0, len(items), BATCH):
        writer.write(items[i : i + BATCH])


@contextmanager
def sqlite_url(workdir: Path) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-sink-", dir=workdir if workdir.exists() else None) as tmp:
        yield f"sqlite:///{Path(tmp) / f'w-{uuid.uuid4().hex[:6]}.db'}"


@contextmanager
def pg_url() -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (a PostgreSQL backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, items: Sequence[EnrichedFeedback], write: Callable[[Engine, Sequence[EnrichedFeedback]], None]
            ) -> tuple[float, float]:
    """(rows/s of wall time, rows per CPU-second) of ``write`` into a freshly migrated warehouse.

    CPU is this process's, plus on PostgreSQL the CPU of the server backends that served it (read
    from /proc: the server must run on this machine). Client and server work in turn, so on an
    idle machine rows per CPU-second is what rows/s becomes; on a busy one it is what the code costs.
    """
    engine = make_engine(url)
    backends: set[int] = set()
    try:
        migrate(engine)
        engine.dispose()
        if engine.dialect.name == "postgresql":
            @event.listens_for(engine, "connect")
            def _pid(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    backends.add(int(cur.fetchone()[0]))

        cpu_start, start = time.process_time(), time.perf_counter()
        write(engine, items)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        cpu += sum(_cpu_seconds(pid) for pid in backends)  # backends started within the run
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM feedback")).scalar_one()
        if count != len(items):
            raise AssertionError(f"{url}: {count} rows written, expected {len(items)}")
        return len(items) / elapsed, len(items) / max(cpu, 1e-9)
    finally:
        engine.dispose()


@stage("sink-write")
def sink_write(ctx: BenchContext) -> list[Result]:
    n = min(ctx.records, 2_000 if ctx.quick else 20_000)
    ctx.log(f"[bench] sink-write: building {n:,} enriched records")
    items = enriched_sample(n, seed=ctx.seed, run=f"bench-{uuid.uuid4().hex[:6]}", days=60)
    results: list[Result] = []
    targets: list[tuple[str, Callable[[], object]]] = [
        ("sqlite", lambda: sqlite_url(ctx.workdir)), ("postgresql", pg_url)]
    for dialect, make_url in targets:
        try:
            with make_url() as url:  # type: ignore[attr-defined]
                simple, simple_cpu = measure(url, items, write_one_at_a_time)
            with make_url() as url:  # type: ignore[attr-defined]
                fast, fast_cpu = measure(url, items, write_bulk)
        except Exception as exc:  # an unreachable PostgreSQL is reported, not fatal
            ctx.log(f"[bench] sink-write {dialect} skipped: {exc}")
            results.append(Result("sink-write", f"{dialect} rows/s", float("nan"), "rows/s",
                                  notes=f"not measured: {str(exc)[:120]}", target=TARGETS[dialect]))
            continue
        results.append(Result(
            "sink-write", f"{dialect} rows/s", fast, "rows/s", baseline=simple,
            baseline_name="one row per statement", target=TARGETS[dialect],
            notes=f"n={n}, batches of {BATCH}; categories, aspects, customers in the same transaction"))
        results.append(Result(
            "sink-write", f"{dialect} rows per CPU-second", fast_cpu, "rows/CPU-s", baseline=simple_cpu,
            baseline_name="one row per statement",
            notes="client" + (" + server backend" if dialect == "postgresql" else "") + " CPU: the rate on an "
                  "idle machine, and what the code costs on a busy one"))
    return results
