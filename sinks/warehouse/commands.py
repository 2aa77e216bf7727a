"""The ``feedback purge`` and ``feedback erase`` commands (registered in :mod:`pipeline.cli`)."""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.errors import ConfigError

console = Console(stderr=True)


def _engine(settings: Any) -> Any:
    """The warehouse, migrated; a SQLite file that is not there is a configuration error, not created."""
    from sinks.warehouse.db import make_engine, migrate

    engine = make_engine(settings.existing_database_url())
    migrate(engine)
    return engine


def _print(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    deleted = result["deleted"]
    assert isinstance(deleted, dict)
    verb = "would delete" if result["dry_run"] else "deleted"
    detail = ", ".join(f"{t} {n}" for t, n in sorted(deleted.items())) or "nothing"
    console.print(f"{result['action']}: {verb} {result['total']} row(s): {detail}")


def purge_command(
    older_than: Annotated[str, typer.Option(help="Age limit of feedback by event time, e.g. 400d, 57w.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Retention: delete feedback (and tickets) older than the limit; logged in retention_log."""
    from datetime import timedelta

    from pipeline.config import load
    from pipeline.logging import configure
    from pipeline.signal_config import ReportSettings, parse_duration
    from sinks.warehouse.retention import purge

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    if seconds < 86400:
        raise ConfigError("--older-than: at least one day (1d)")
    settings = load(ReportSettings)
    configure(settings.log_level, settings.log_format, "purge")
    engine = _engine(settings)
    result = purge(engine, timedelta(seconds=seconds), actor=getpass.getuser(), dry_run=dry_run)
    _print(result.as_dict(), as_json)


def erase_command(
    customer_ref: Annotated[list[str] | None, typer.Option("--customer-ref", help="The customer's reference "
                                                           "(c_..., as in the warehouse); repeatable.")] = None,
    email: Annotated[list[str] | None, typer.Option(help="The customer's e-mail address (hashed with the "
                                                    "configured key, never stored); repeatable.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Right to erasure: delete everything the warehouse holds about one customer; logged."""
    from sqlalchemy import inspect

    from pipeline.config import load
    from pipeline.logging import configure
    from pipeline.schema import customer_refs
    from pipeline.signal_config import ReportSettings
    from sinks.warehouse.retention import erase

    settings = load(ReportSettings)
    refs = list(customer_ref or [])
    if email:
        keys = settings.customer_keys()  # the current key and every former one; never a new key
        refs += [ref for e in email for ref in customer_refs(e, keys)]
    if not refs:
        raise ConfigError("name the customer: --customer-ref REF or --email ADDRESS")
    configure(settings.log_level, settings.log_format, "erase")
    engine = _engine(settings)
    result = erase(engine, refs, actor=getpass.getuser(), dry_run=dry_run).as_dict()
    result["covered"] = {
        "warehouse": engine.url.render_as_string(hide_password=True),
        "data_dir": settings.data_location,
        "key": ("FEEDBACK_CUSTOMER_HASH_KEY" if settings.customer_hash_key is not None
                else str(settings.data_dir / "customer_hash.key")) if email else None,
        "customer_refs": len(set(refs)),
        "keys": len(settings.customer_hash_keys) + 1 if email else None,
        "tables": sorted(inspect(engine).get_table_names()),
    }
    engine.dispose()
    _print(result, as_json)
    if not as_json:
        covered = result["covered"]
        console.print(f"covered: warehouse {covered['warehouse']} ({len(covered['tables'])} tables searched), "
                      f"{covered['customer_refs']} customer reference(s)"
                      + (f" hashed with the key from {covered['key']}" if covered["key"] else "")
                      + (f" and {covered['keys'] - 1} former key(s)" if (covered["keys"] or 0) > 1 else "")
                      + f"; data directory {covered['data_dir']}. Copies outside this warehouse (backups, "
                      "exports, Kafka topics until their retention) are not covered.")
