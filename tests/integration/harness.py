"""A real pipeline for the tests: the components run as subprocesses of the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from pipeline.broker import free_port, port_open
from pipeline.schema import DeadLetter
from pipeline.supervisor import _die_with_parent
from tests.conftest import TEST_CUSTOMER_KEY

COMPONENTS = {
    "http": ["serve-http"],
    "processor": ["process"],
    "sink": ["sink", "warehouse"],
    "alerts": ["sink", "alerts"],  # degrading signals -> alerts (issue 6); not in start_all
}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} (last: {last!r})")


class Pipeline:
    """HTTP service, faust processor and warehouse sink on their own topics (a unique prefix)."""

    def __init__(self, bootstrap: str, warehouse_url: str, engine: Engine, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.engine = engine
        self.workdir = workdir
        self.prefix = f"t{uuid.uuid4().hex[:8]}."
        self.http_port = free_port()
        self.ports = {"http": self.http_port, "processor": free_port(), "sink": free_port(), "alerts": free_port()}
        self.env = {
            **os.environ,
            "FEEDBACK_KAFKA_BOOTSTRAP": bootstrap,
            "FEEDBACK_TOPIC_PREFIX": self.prefix,
            "FEEDBACK_TOPIC_PARTITIONS": "4",
            "FEEDBACK_WAREHOUSE_URL": warehouse_url,
            "FEEDBACK_DATA_DIR": str(workdir),
            "FEEDBACK_HTTP_PORT": str(self.http_port),
            "FEEDBACK_PROCESSOR_METRICS_PORT": str(self.ports["processor"]),
            "FEEDBACK_SINK_METRICS_PORT": str(self.ports["sink"]),
            "FEEDBACK_ALERT_METRICS_PORT": str(self.ports["alerts"]),
            "FEEDBACK_LOG_FORMAT": "json",
            "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = f"http://127.0.0.1:{self.http_port}"

    def start(self, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(  # dies with the test run, even when pytest is killed
            [sys.executable, "-m", "pipeline", *COMPONENTS[name]], env=self.env, stdout=log, stderr=log,
            preexec_fn=_die_with_parent,
        )

    def start_all(self) -> None:
        for name in ("sink", "processor", "http"):
            self.start(name)
        wait_for(lambda: port_open("127.0.0.1", self.http_port), 90, what="http service")
        wait_for(lambda: port_open("127.0.0.1", self.ports["sink"]), 90, what="sink metrics")
        # Prove the whole path works (faust joined its group) before the tests start.
        ref = f"warmup-{uuid.uuid4()}"
        r = httpx.post(f"{self.url}/v1/events", json={"source_ref": ref, "text": "warm up"}, timeout=30)
        assert r.status_code == 202, r.text
        wait_for(lambda: self.count_or_zero(f"source_ref = '{ref}'") == 1, 90, what="warm-up row")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # -- observing -----------------------------------------------------------------------------
    def count(self, where: str = "1=1", table: str = "feedback") -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())

    def count_or_zero(self, where: str = "1=1") -> int:
        """Like count, but 0 while the sink has not created the tables yet."""
        try:
            return self.count(where)
        except DBAPIError:
            return 0

    def rows(self, where: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(text(f"SELECT * FROM feedback WHERE {where}"), params or {})
            return [dict(r._mapping) for r in result]

    def categories(self, feedback_id: Any) -> list[str]:
        with self.engine.connect() as conn:
            result = conn.execute(
                text("SELECT category FROM feedback_categories WHERE feedback_id = :id ORDER BY rank"),
                {"id": feedback_id},
            )
            return [r[0] for r in result]

    def metric(self, component: str, name: str, **labels: str) -> float:
        port = self.ports[component]
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        except httpx.TransportError:  # the process is (re)starting: nothing counted yet
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def dead_letters(self, predicate: Callable[[DeadLetter], bool], expect: int = 1,
                     timeout: float = 30) -> list[DeadLetter]:
        consumer = KafkaConsumer(
            self.prefix + "feedback.dlq", bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, consumer_timeout_ms=1000, group_id=None,
        )
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(found) < expect:
                for msg in consumer:
                    letter = DeadLetter.model_validate_json(msg.value)
                    if predicate(letter):
                        found.append(letter)
        finally:
            consumer.close()
        return found
