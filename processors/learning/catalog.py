"""The warehouse's ``models`` table (revision ``0009_models``), written with SQLAlchemy Core text
queries: the processors never import the sinks, the table's columns are the contract.

Guarantees: the table mirrors the model directory (cards and pointers), which stays the source of
truth for the processor; with no warehouse (no SQLite file yet, or a schema before 0009) nothing is
written and the caller is told why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, bindparam, create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from pipeline.logging import get_logger

log = get_logger(__name__)


def engine_for(url: str) -> Engine | None:
    """An engine for the warehouse URL; None for a SQLite file that does not exist (never created here)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return create_engine(url)


def has_table(engine: Engine, name: str) -> bool:
    try:
        return inspect(engine).has_table(name)
    except SQLAlchemyError:
        return False


def record(engine: Engine | None, card: dict[str, Any]) -> str:
    """Insert (or replace) the row of ``card``; returns what happened, for the report."""
    if engine is None or not has_table(engine, "models"):
        return "not recorded: no warehouse with a models table (run `feedback migrate`)"
    row = {"version": card["version"], "kind": card["kind"], "created_at": datetime.fromisoformat(card["created_at"]),
           "n_train": card["n_train"], "n_holdout": card["n_holdout"], "counts": card["counts"],
           "metrics": card["metrics"], "file": card["file"], "sha256": card["sha256"], "active": False}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM models WHERE version = :version"), {"version": row["version"]})
        conn.execute(text("INSERT INTO models (version, kind, created_at, n_train, n_holdout, counts, metrics, file, "
                          "sha256, active) VALUES (:version, :kind, :created_at, :n_train, :n_holdout, :counts, "
                          ":metrics, :file, :sha256, :active)").bindparams(bindparam("counts", type_=JSON),
                                                            bindparam("metrics", type_=JSON)), row)
    return "recorded in the models table"


def set_active(engine: Engine | None, kind: str, version: str | None) -> None:
    """Mark ``version`` the only active row of ``kind`` (None: none active)."""
    if engine is None or not has_table(engine, "models"):
        return
    with engine.begin() as conn:
        conn.execute(text("UPDATE models SET active = :f WHERE kind = :kind AND active = :t"),
                     {"kind": kind, "f": False, "t": True})
        if version is not None:
            conn.execute(text("UPDATE models SET active = :t, activated_at = :now WHERE version = :version"),
                         {"version": version, "t": True, "now": datetime.now(UTC)})
