"""`feedback status` against a running pipeline: what answers, what does not, and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def status(pipeline: Pipeline, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    env = {**pipeline.env, "FEEDBACK_PROCESSOR_WORKERS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "status", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


def test_status_reports_every_component_and_fails_while_one_is_down(pipeline: Pipeline) -> None:
    code, result = status(pipeline)  # the harness runs http, processor and sink; not the alert sink
    by_name = {c["name"]: c for c in result["components"]}
    assert set(by_name) == {"http", "processor", "sink", "alerts"}
    for name in ("http", "processor", "sink"):
        assert by_name[name]["healthy"] and by_name[name]["ready"], by_name[name]
    assert not by_name["alerts"]["healthy"] and "down" in by_name["alerts"]["detail"]
    assert result["broker"]["ready"] and result["broker"]["brokers"] >= 1
    assert result["data_dir"] == str(pipeline.workdir)
    assert code == 1


def test_status_of_named_endpoints_is_ready(pipeline: Pipeline) -> None:
    code, result = status(pipeline, "--endpoint", f"http={pipeline.url}",
                          "--endpoint", f"sink=http://127.0.0.1:{pipeline.ports['sink']}")
    assert [c["name"] for c in result["components"]] == ["http", "sink"]
    sink = result["components"][1]
    assert sink["errors"] is not None  # its metrics were read
    assert code == 0


def test_status_refuses_a_malformed_endpoint(pipeline: Pipeline) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline", "status", "--endpoint", "nourl"], env=pipeline.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "NAME=URL" in proc.stderr
