"""Corrective action from the command line: list, acknowledge, resolve and annotate incidents and alerts.

Every action is a row in ``alert_history`` (who, when, what, the note): the evidence a management
review asks for. The running alert sink picks the row up and tells the channels.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from pipeline.errors import ConfigError
from pipeline.signal_schema import Incident
from sinks.alerts import incidents, store
from sinks.alerts.lifecycle import AlertState
from sinks.alerts.store import migrate_with_retry


def parse_id(value: str, engine: Engine) -> uuid.UUID:
    """A full alert id, or an unambiguous prefix of one (as ``alerts list`` prints them)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    with engine.connect() as conn:
        matches = [a.alert_id for a in store.list_alerts(conn, limit=100_000) if str(a.alert_id).startswith(value)]
    if len(matches) != 1:
        raise ConfigError(f"{value!r} matches {len(matches)} alerts; give more of the id")
    return matches[0]


def list_alerts(engine: Engine, status: str | None) -> list[AlertState]:
    migrate_with_retry(engine)
    with engine.connect() as conn:
        return store.list_alerts(conn, status)


def act(engine: Engine, alert_id: str, action: str, by: str, note: str | None) -> AlertState:
    """Record an operator's ``acknowledged`` / ``resolved`` / ``note`` on an alert."""
    migrate_with_retry(engine)
    aid = parse_id(alert_id, engine)
    try:
        with engine.begin() as conn:
            return store.operator_action(conn, aid, action, by, note, datetime.now(UTC))
    except LookupError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def history(engine: Engine, alert_id: str) -> list[dict[str, Any]]:
    aid = parse_id(alert_id, engine)
    with engine.connect() as conn:
        return store.history(conn, aid)


# -- incidents -------------------------------------------------------------------------------------------
def list_incidents(engine: Engine, status: str | None) -> list[Incident]:
    migrate_with_retry(engine)
    with engine.connect() as conn:
        return incidents.list_incidents(conn, status)


def _incident_id(value: str, engine: Engine) -> uuid.UUID | None:
    """The incident a full id or an unambiguous prefix names, or None when it names no incident."""
    with engine.connect() as conn:
        ids = [str(i.incident_id) for i in incidents.list_incidents(conn, limit=100_000)]
    matches = [i for i in ids if i.startswith(value) or i == value]
    if len(matches) > 1:
        raise ConfigError(f"{value!r} matches {len(matches)} incidents; give more of the id")
    return uuid.UUID(matches[0]) if matches else None


def act_any(engine: Engine, ident: str, action: str, by: str, note: str | None) -> Any:
    """An operator's action on the incident ``ident`` names, else on the alert it names."""
    migrate_with_retry(engine)
    iid = _incident_id(ident, engine)
    if iid is None:
        return act(engine, ident, action, by, note)
    try:
        with engine.begin() as conn:
            return incidents.operator_action(conn, iid, action, by, note, datetime.now(UTC))
    except (LookupError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def history_any(engine: Engine, ident: str) -> list[dict[str, Any]]:
    migrate_with_retry(engine)
    iid = _incident_id(ident, engine)
    if iid is None:
        return history(engine, ident)
    with engine.connect() as conn:
        return incidents.history(conn, iid)
