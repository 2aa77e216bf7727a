"""The supervisor's rules that need no broker: a configuration error is not restarted in a loop, and
FEEDBACK_METRICS_PORT never puts every child on one port."""

from __future__ import annotations

import sys
import time

import pytest

from pipeline.config import UpSettings, load
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
