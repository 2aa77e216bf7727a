"""Fresh warehouses (a SQLite file or a new PostgreSQL schema) and a populated data set for the
analytics tests: feedback written by the sink's writer, plus tickets and alerts rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, insert

from pipeline.schema import EnrichedFeedback
from sinks.warehouse.db import make_engine, migrate
from sinks.warehouse.writer import WarehouseWriter
from tests.bench.warehouse_samples import enriched_sample
from tests.conftest import require
from tests.integration.conftest import PG_DSN, _pg_available

DIALECTS = ["sqlite", "postgresql"]


@contextmanager
def fresh_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty warehouse of ``kind``, removed afterwards (PostgreSQL: a schema)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'w-{uuid.uuid4().hex[:8]}.db'}"
        return
    require(_pg_available(), f"PostgreSQL at {PG_DSN}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def fresh_engine(kind: str, tmp_path: Path, migrated: bool = True) -> Iterator[Engine]:
    with fresh_url(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            if migrated:
                migrate(engine)
            yield engine
        finally:
            engine.dispose()


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def souring_delivery(days: int) -> Any:
    """Delivery turns sour in the last four weeks of the ``days``; the rest stays steady."""

    def trend(day: int, category: str) -> tuple[float, float, float]:
        if category == "delivery" and day >= days - 28:
            return (0.7, 0.15, 0.15)
        return (0.3, 0.25, 0.45)

    return trend


GROUPS = ["Billing desk", "Returns", "Tier 1", "Tier 2"]


@dataclass
class Dataset:
    """What was written, for computing the expected answers independently of SQL."""

    items: list[EnrichedFeedback]
    tickets: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    history: list[dict[str, Any]]


def populate(engine: Engine, n: int = 1200, days: int = 120, seed: int = 11) -> Dataset:
    items = enriched_sample(n, seed=seed, start=today() - timedelta(days=days - 1), days=days, customers=150,
                            trend=souring_delivery(days))
    writer = WarehouseWriter(engine)
    for i in range(0, len(items), 500):
        writer.write(items[i : i + 500])
    now = datetime.now(UTC)
    refs = sorted({i.customer_ref for i in items if i.customer_ref})
    tickets = []
    for k in range(40):
        tickets.append({
            "ticket_key": f"zendesk:{1000 + k}", "system": "zendesk", "ticket_id": str(1000 + k),
            "subject": f"Order problem {k}", "status": "solved" if k % 3 else "open", "priority": "normal",
            "group_name": GROUPS[k % 4] if k % 10 else None, "customer_ref": refs[k % len(refs)],
            "csat_score": None if k % 7 == 0 else 1 + (k * 3) % 5, "csat_comment": f"comment {k}",
            "csat_at": now - timedelta(days=k), "state_at": now - timedelta(days=k), "first_seen_at": now,
            "written_at": now, "tags": ["web"],
        })
    alerts, history = [], []
    for k, (status, signal) in enumerate([("open", "negative_share"), ("acknowledged", "nps"),
                                          ("resolved", "csat")]):
        aid = uuid.UUID(int=k + 1)
        opened = now - timedelta(days=10 - k)
        alerts.append({
            "alert_id": aid, "signal": signal, "scope_type": "category", "scope_value": "delivery",
            "status": status, "severity": "warning", "first_window_start": opened, "window_start": opened,
            "window_end": opened + timedelta(hours=1), "observed": 0.7, "expected": 0.3, "sample_size": 40,
            "z_score": 4.2, "opened_at": opened, "updated_at": opened,
            "acknowledged_at": opened + timedelta(hours=2) if status != "open" else None,
            "acknowledged_by": "ops@example.org" if status != "open" else None,
            "resolved_at": opened + timedelta(days=1) if status == "resolved" else None,
            "resolved_by": "ops@example.org" if status == "resolved" else None,
            "in_control_streak": 0, "summary": f"{signal} of delivery left control",
        })
        for j, note in enumerate(["Courier partner contacted", "Switched depots"][: k + 1]):
            history.append({
                "history_id": uuid.uuid4(), "alert_id": aid, "at": opened + timedelta(hours=3 + j),
                "actor": "ops@example.org", "action": "note", "status": status, "severity": "warning",
                "summary": "note", "note": note, "notified": True,
            })
    from sinks.warehouse.alerts import AlertHistoryRow, AlertRow
    from sinks.warehouse.tickets import TicketState

    with engine.begin() as conn:
        conn.execute(insert(TicketState.__table__), tickets)
        conn.execute(insert(AlertRow.__table__), alerts)
        conn.execute(insert(AlertHistoryRow.__table__), history)
    return Dataset(items, tickets, alerts, history)


def run_cli(args: list[str], env: dict[str, str]) -> Any:
    """``feedback ARGS`` in this process (typer's CliRunner); afterwards structlog is reset, because the
    command configured it to print to the runner's captured stderr, which is closed by then."""
    import structlog
    from typer.testing import CliRunner

    from pipeline.cli import app

    try:
        return CliRunner().invoke(app, args, env=env)
    finally:
        structlog.reset_defaults()
