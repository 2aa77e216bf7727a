"""The supervisor's rules that need no broker: a configuration error is not restarted in a loop,
FEEDBACK_METRICS_PORT never puts every child on one port, a dead broker closes the gate and stops every
child but HTTP, and the removed broker-workaround settings only warn."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from pipeline.config import UpSettings, load
from pipeline.gate import GateState
from pipeline.supervisor import Child, Supervisor


def watch_until(sup: Supervisor, done: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup._watch()
        if callable(done) and done():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_child_that_exits_with_a_configuration_error_is_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor(load(UpSettings, processor_workers=1), with_broker=False)
    bad = Child("bad", [sys.executable, "-c", "import sys; sys.exit(2)"])
    flaky = Child("flaky", [sys.executable, "-c", "import sys; sys.exit(1)"])
    sup.children = [bad, flaky]
    for child in sup.children:
        child.start(sup.env)
    watch_until(sup, lambda: flaky.restarts >= 2)  # an ordinary crash is restarted (with backoff)
    assert bad.restarts == 1 and bad.proc is None and bad.next_start == float("inf")
    sup.stop_all()


def test_feedback_metrics_port_is_not_handed_to_every_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_METRICS_PORT", "9999")
    sup = Supervisor(load(UpSettings, processor_workers=1), with_broker=False)
    assert "FEEDBACK_METRICS_PORT" not in sup.env


def test_broker_death_closes_the_gate_and_stops_every_child_but_http(tmp_path: Path) -> None:
    """The first half of the rule (the broker is never started here): the gate closes at once, HTTP keeps
    running, the other children are stopped and wait for the broker before they start again."""
    sup = Supervisor(load(UpSettings, processor_workers=1, data_dir=tmp_path), with_broker=True)
    assert sup.gate.path == tmp_path.resolve() / "broker.gate"
    assert sup.env["FEEDBACK_BROKER_GATE"] == str(sup.gate.path)
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    broker, http, sink = Child("broker", sleep), Child("http", sleep), Child("sink", sleep)
    sup.children = [broker, sink, http]
    sup.gate.write(GateState(open=True, epoch=1))
    sup._broker_starts = 1
    for child in sup.children:
        child.start(sup.env)
    try:
        assert broker.proc is not None and http.proc is not None
        http_pid = http.proc.pid
        broker.proc.kill()
        broker.proc.wait()
        watch_until(sup, lambda: broker.proc is None)
        assert sup.gate.read() == GateState(open=False, epoch=1)
        assert sink.proc is None and http.proc is not None and http.proc.pid == http_pid and http.proc.poll() is None
        sup._start = lambda child: (_ for _ in ()).throw(AssertionError(f"{child.name} started"))  # type: ignore[method-assign]
        broker.next_start = float("inf")  # the broker stays down: nothing else may start
        for _ in range(5):
            sup._watch()
        assert sink.proc is None
    finally:
        sup.stop_all()
    assert not sup.gate.path.exists()


def test_removed_settings_warn_and_never_fail_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_TOPIC_WATCH_SECONDS", "20")
    monkeypatch.setenv("FEEDBACK_CONFIRM_TOPIC_IDS", "true")
    with pytest.warns(FutureWarning) as warned:
        settings = load(UpSettings, processor_workers=1)
    assert {str(w.message).split()[0] for w in warned} == {"FEEDBACK_TOPIC_WATCH_SECONDS", "FEEDBACK_CONFIRM_TOPIC_IDS"}
    assert not hasattr(settings, "topic_watch_seconds") and not hasattr(settings, "confirm_topic_ids")
