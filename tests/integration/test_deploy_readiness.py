"""Liveness and readiness of the worker components follow the broker, as Kubernetes probes them.

A processor and a warehouse sink become ready (``/readyz`` 200) once they run against a broker;
when the broker goes away, ``/readyz`` answers 503 (no traffic) while ``/healthz`` stays 200 (no
restart loop); when a broker listens again, they are ready again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline import broker
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

COMPONENTS = {"processor": (["process"], "FEEDBACK_PROCESSOR_METRICS_PORT"),
              "sink": (["sink", "warehouse"], "FEEDBACK_SINK_METRICS_PORT")}


def _status(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def components(tmp_path: Path) -> Iterator[tuple[int, dict[str, int], dict[str, subprocess.Popen[bytes]]]]:
    broker_port = broker.free_port()
    ports = {name: broker.free_port() for name in COMPONENTS}
    procs: dict[str, subprocess.Popen[bytes]] = {"broker": broker.start(broker_port, log_file=tmp_path / "broker.log")}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    for name, (args, port_var) in COMPONENTS.items():
        env = {**base_env, "FEEDBACK_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
               "FEEDBACK_TOPIC_PREFIX": f"r{uuid.uuid4().hex[:8]}.", "FEEDBACK_DATA_DIR": str(tmp_path / name),
               "FEEDBACK_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}", port_var: str(ports[name]),
               "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY, "FEEDBACK_LOG_FORMAT": "json"}
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115
        procs[name] = subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
    try:
        yield broker_port, ports, procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_readyz_follows_the_broker_while_healthz_stays_up(
        components: tuple[int, dict[str, int], dict[str, subprocess.Popen[bytes]]], tmp_path: Path) -> None:
    broker_port, ports, procs = components

    def alive(name: str) -> None:
        assert procs[name].poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]

    def wait_status(path: str, status: int, timeout: float) -> None:
        for name, port in ports.items():
            wait_for(lambda n=name, p=port: alive(n) or _status(p, path) == status, timeout,
                     what=f"{name} {path} == {status}")

    wait_status("/readyz", 200, 120)  # started, topics provisioned, broker reachable
    kafka = procs.pop("broker")
    kafka.terminate()
    kafka.wait(timeout=10)
    wait_status("/readyz", 503, 30)  # the broker is gone: no traffic, but no restart either
    wait_status("/healthz", 200, 5)
    procs["broker"] = broker.start(broker_port, log_file=tmp_path / "broker-2.log")
    wait_status("/readyz", 200, 30)
