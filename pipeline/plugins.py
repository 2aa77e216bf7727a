"""How components plug into the kernel: entry points, so that ``pipeline`` imports no component.

A component registers itself in ``pyproject.toml`` (then ``pip install -e .`` refreshes the metadata):

* ``[project.entry-points."feedback.commands"]``: ``NAME = "package.module:obj"`` adds a ``feedback``
  command. ``obj`` is a Typer command function (``report = "sinks.report.commands:report_command"``)
  or a ``typer.Typer`` command group (``alerts = "sinks.alerts.commands:alerts_app"``). A dotted
  name puts the command in one of the kernel's groups: ``"sink.warehouse"`` is ``feedback sink
  warehouse``, ``"connector.email"`` is ``feedback connector email``.
* ``[project.entry-points."feedback.services"]``: ``NAME = "package.module:SERVICE"``, a
  :class:`Service`: a long-running child of ``feedback up`` (``python -m pipeline <args>``).
* ``[project.entry-points."feedback.tables"]``: a module or ``MetaData`` declaring warehouse tables
  outside ``sinks.warehouse`` (read by the Alembic environment).

Guarantees: the order of commands and services does not depend on installation order (services
start by ``order``, then name); an entry point that cannot be loaded, or that is not what its group
expects, is reported by name instead of disappearing silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pipeline.errors import ConfigError

COMMANDS = "feedback.commands"
SERVICES = "feedback.services"
TABLES = "feedback.tables"


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Service:
    """A long-running child of ``feedback up``.

    Guarantees: the supervisor runs ``python -m pipeline *args`` in the pipeline's environment when
    ``enabled()`` is true at start-up, after every ``prepare`` of every enabled service has run once
    (a ``prepare`` that fails is logged and the children start anyway: they retry on their own), and
    starts the services by ascending ``order``.
    """

    args: tuple[str, ...]
    order: int = 100
    enabled: Callable[[], bool] = _always
    prepare: Callable[[Mapping[str, str]], None] | None = field(default=None)


def registered(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, sorted by name (one per name: the last installed wins)."""
    return sorted({ep.name: ep for ep in entry_points(group=group)}.values(), key=lambda ep: ep.name)


def load(ep: EntryPoint) -> Any:
    """The object an entry point names; a ConfigError naming the entry point when it cannot be loaded."""
    try:
        return ep.load()
    except Exception as exc:  # an import error in a plugin must name the plugin, not just the module
        raise ConfigError(f"entry point {ep.name!r} of {ep.group!r} ({ep.value}) cannot be loaded: {exc}") from exc


def services() -> list[tuple[str, Service]]:
    """The enabled registered services, in start order."""
    found: list[tuple[str, Service]] = []
    for ep in registered(SERVICES):
        svc = load(ep)
        if not isinstance(svc, Service):
            raise ConfigError(f"entry point {ep.name!r} of {SERVICES!r} ({ep.value}) is not a pipeline.plugins.Service")
        if svc.enabled():
            found.append((ep.name, svc))
    return sorted(found, key=lambda item: (item[1].order, item[0]))


def add_commands(app: Any, groups: Mapping[str, Any]) -> list[str]:
    """Add every registered command to the Typer ``app`` (a dotted name goes into ``groups[prefix]``);
    returns the names added."""
    import typer

    added = []
    for ep in registered(COMMANDS):
        obj = load(ep)
        prefix, _, name = ep.name.rpartition(".")
        if prefix and prefix not in groups:
            raise ConfigError(f"entry point {ep.name!r} of {COMMANDS!r}: no command group {prefix!r} "
                              f"(known: {', '.join(sorted(groups))})")
        target = groups[prefix] if prefix else app
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=name)
        elif callable(obj):
            target.command(name)(obj)
        else:
            raise ConfigError(f"entry point {ep.name!r} of {COMMANDS!r} ({ep.value}) is neither a command "
                              "function nor a typer.Typer")
        added.append(ep.name)
    return added
