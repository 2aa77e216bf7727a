"""`feedback up` (what `make run` calls): the whole pipeline on embedded defaults, and a clean stop."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from pipeline.broker import free_port, port_open
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    http_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FEEDBACK_")}  # embedded defaults: no broker or warehouse configured
    env.update({
        "FEEDBACK_HTTP_PORT": str(http_port),
        "FEEDBACK_EMBEDDED_BROKER_PORT": str(free_port()),
        "FEEDBACK_PROCESSOR_METRICS_PORT": str(free_port()),
        "FEEDBACK_SINK_METRICS_PORT": str(free_port()),
        "FEEDBACK_ALERT_METRICS_PORT": str(free_port()),
    })
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "up"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open("127.0.0.1", http_port), 60, what="http service")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4, children  # broker, sink, processor, http
        http_child = next(c for c in children if "serve-http" in c.cmdline())
        gate = tmp_path / "data" / "broker.gate"  # the supervisor's word on the broker (pipeline/gate.py)
        assert http_child.environ().get("FEEDBACK_BROKER_GATE") == str(gate) and gate.read_text() == "open 1"
        sid = uuid.uuid4().hex[:16]
        r = httpx.post(f"http://127.0.0.1:{http_port}/forms/default",
                       data={"comment": "Great support, they fixed my login problem in minutes. I love it!",
                             "nps_score": "9", "submission_id": sid}, timeout=30)
        assert r.status_code == 202, r.text
        db = tmp_path / "data" / "warehouse.db"

        def row() -> tuple[str, str] | None:
            if not db.exists():
                return None
            with sqlite3.connect(db) as conn:
                try:
                    return conn.execute("select sentiment_label, primary_category from feedback "
                                        "where source_ref = ?", (f"default:{sid}",)).fetchone()
                except sqlite3.OperationalError:
                    return None

        label, category = wait_for(row, 90, what="row in ./data/warehouse.db")
        assert label == "positive" and category in {"customer_support", "account_login", "praise"}

        # a crashed child is restarted by the supervisor, and the pipeline keeps working
        sink = next(c for c in children if "warehouse" in c.cmdline())
        sink.kill()
        sink.wait(10)

        def new_sink() -> psutil.Process | None:
            return next((c for c in psutil.Process(proc.pid).children()
                         if "warehouse" in c.cmdline() and c.pid != sink.pid), None)

        restarted = wait_for(new_sink, 30, what="restarted sink")
        children.append(restarted)
        sid = uuid.uuid4().hex[:16]
        httpx.post(f"http://127.0.0.1:{http_port}/forms/default",
                   data={"comment": "Second visit, still great", "submission_id": sid}, timeout=30)
        wait_for(row, 90, what="row written by the restarted sink")
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        code = proc.wait(timeout=60)
        log.close()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert f"http://127.0.0.1:{http_port}/forms/default" in output
    assert "already exists" not in output, "the sinks raced to migrate a new warehouse"  # migrated once, first
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, f"orphan: {child}"


@pytest.mark.kafka_only
def test_up_on_apache_kafka_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    """FEEDBACK_EMBEDDED_BROKER=kafka: a durable single-machine deployment with two processor workers."""
    from kafka import KafkaConsumer

    broker_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update({
        "FEEDBACK_EMBEDDED_BROKER": "kafka",
        "FEEDBACK_PROCESSOR_WORKERS": "2",
        "FEEDBACK_HTTP_PORT": str(http_port),
        "FEEDBACK_EMBEDDED_BROKER_PORT": str(broker_port),
        "FEEDBACK_PROCESSOR_METRICS_PORT": str(free_port()),
        "FEEDBACK_SINK_METRICS_PORT": str(free_port()),
        "FEEDBACK_ALERT_METRICS_PORT": str(free_port()),
    })
    db = tmp_path / "data" / "warehouse.db"

    def rows(ref: str) -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db) as conn:
            try:
                return int(conn.execute("select count(*) from feedback where source_ref = ?", (ref,)).fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    def raw_records() -> int:
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{broker_port}")
        try:
            parts = [p for p in consumer.partitions_for_topic("feedback.raw") or ()]
            from kafka import TopicPartition

            ends = consumer.end_offsets([TopicPartition("feedback.raw", p) for p in parts])
            return sum(ends.values())
        finally:
            consumer.close()

    def run_once(ref: str) -> tuple[list[str], int]:
        log = open(tmp_path / "up.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "up"], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: port_open("127.0.0.1", http_port), 180, what="http service")
            names = [" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children(recursive=True)]
            r = httpx.post(f"http://127.0.0.1:{http_port}/v1/events", json={"source_ref": ref, "text": "Late again"},
                           timeout=60)
            assert r.status_code == 202, r.text
            wait_for(lambda: rows(ref) == 1, 180, what=f"row {ref}")
            return names, raw_records()
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=90)
            log.close()
            assert code == 0, (tmp_path / "up.log").read_text(errors="replace")[-3000:]

    names, first_count = run_once("first")
    assert any("kafka.Kafka" in n for n in names), names  # Apache Kafka, not Tansu
    assert sum(n.endswith("pipeline process") for n in names) == 2, names
    assert first_count >= 1
    _, second_count = run_once("second")
    assert second_count >= first_count + 1  # the broker kept the first run's records
    assert not port_open("127.0.0.1", broker_port)  # stopped with feedback up
