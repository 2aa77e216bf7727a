"""Degrading signals: event-time windows per scope (the observation path of the alerts).

``windows`` is pure (unit-tested without Kafka); ``agent`` wires the windows into the processor's
faust app. The detector, the alert lifecycle and incidents belong to the alert sink
(:mod:`sinks.alerts`), whose state lives in the warehouse.
"""

from __future__ import annotations

from typing import Any


def register(app: Any, settings: Any, topics: Any) -> Any:
    """Add the signals agents to the faust ``app`` (see :func:`processors.signals.agent.register`)."""
    from processors.signals.agent import register as _register

    return _register(app, settings, topics)


__all__ = ["register"]
