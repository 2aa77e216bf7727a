"""Components register themselves (pipeline/plugins.py): `feedback up` children come from entry points."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from pipeline import plugins
from pipeline.config import ProcessorSettings, UpSettings, load
from pipeline.errors import ConfigError
from pipeline.supervisor import Supervisor


@pytest.fixture(autouse=True)
def _no_imap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDBACK_IMAP_HOST", raising=False)


def test_the_supervisor_runs_the_same_children_as_before() -> None:
    me = [sys.executable, "-m", "pipeline"]
    sup = Supervisor(load(UpSettings, processor_workers=2), with_broker=False)
    assert [(c.name, c.argv) for c in sup.children] == [
        ("sink", [*me, "sink", "warehouse"]),
        ("processor", [*me, "process"]),
        ("processor-1", [*me, "process"]),  # FEEDBACK_PROCESSOR_WORKERS: one group, several workers
        ("alerts", [*me, "sink", "alerts"]),
        ("http", [*me, "serve-http"]),
    ]
    second = sup.children[2].env
    assert second["FEEDBACK_PROCESSOR_WORKER"] == "1"
    assert int(second["FEEDBACK_PROCESSOR_METRICS_PORT"]) == load(ProcessorSettings).metrics_port + 100


def test_the_email_connector_runs_only_when_imap_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "email" not in [name for name, _ in plugins.services()]
    monkeypatch.setenv("FEEDBACK_IMAP_HOST", "imap.example.com")
    names = [name for name, _ in plugins.services()]
    assert names[-1] == "email"
    assert dict(plugins.services())["email"].args == ("connector", "email")


def test_only_the_warehouse_sink_prepares_before_start() -> None:
    assert [name for name, svc in plugins.services() if svc.prepare is not None] == ["sink"]


def test_a_plugin_that_cannot_be_loaded_is_named() -> None:
    ep = EntryPoint(name="broken", value="no_such_module_for_feedback:thing", group=plugins.COMMANDS)
    with pytest.raises(ConfigError, match=r"'broken' of 'feedback\.commands'.*cannot be loaded"):
        plugins.load(ep)


def test_a_service_entry_point_must_be_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="odd", value="pipeline.plugins:COMMANDS", group=plugins.SERVICES)
    monkeypatch.setattr(plugins, "registered", lambda group: [ep])
    with pytest.raises(ConfigError, match=r"'odd' .* is not a pipeline\.plugins\.Service"):
        plugins.services()


def test_every_command_of_the_cli_is_there_and_components_bring_their_own() -> None:
    import typer

    from pipeline import cli

    root: Any = typer.main.get_command(cli.app)
    assert {"up", "broker", "schema", "send", "serve-http", "process", "migrate", "import-mbox", "import",
            "replay", "report", "purge", "erase", "eval", "train-categories", "alerts"} <= set(root.commands)
    assert {"warehouse", "alerts"} <= set(root.commands["sink"].commands)
    assert {"zendesk", "email"} <= set(root.commands["connector"].commands)
    registered = plugins.registered(plugins.COMMANDS)
    assert registered, "no feedback.commands entry points: run pip install -e ."
    for ep in registered:  # the kernel registers nothing of its own: every plugin command is a component's
        assert ep.value.split(".")[0] in {"connectors", "processors", "sinks"}, ep


def test_a_dotted_command_needs_a_known_group(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    ep = EntryPoint(name="nowhere.thing", value="pipeline.cli:main", group=plugins.COMMANDS)
    monkeypatch.setattr(plugins, "registered", lambda group: [ep])
    with pytest.raises(ConfigError, match="no command group 'nowhere'"):
        plugins.add_commands(typer.Typer(), {"sink": typer.Typer()})
