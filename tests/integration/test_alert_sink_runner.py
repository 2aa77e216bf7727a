"""The alert sink process on the kernel's sink runner (``feedback sink alerts``), against a real broker
and a SQLite warehouse: a closed window is stored and judged, a window that cannot be read goes to
``feedback.dlq`` with the alert sink's stage and reason (the rest of the batch goes on), a window sent
twice is stored once, ``/readyz`` answers once it consumes, and SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from pipeline.signal_schema import SignalWindow
from processors.signals.windows import window_id
from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _window(hour: int) -> SignalWindow:
    start = START + timedelta(hours=hour)
    return SignalWindow(window_id=window_id("category", "delivery", start.timestamp(), 3600), scope_type="category",
                        scope_value="delivery", window_start=start, window_end=start + timedelta(hours=1),
                        window_seconds=3600, volume=20, negative=4, neutral=10, positive=6, negative_share=0.2)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_alert_sink_stores_windows_once_dead_letters_the_unreadable_and_stops_on_sigterm(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    p = Pipeline(kafka_bootstrap, url, engine, tmp_path)
    try:
        p.start("alerts")
        wait_for(lambda: _ready(p.ports["alerts"]), 90, interval=0.5, what="alert sink ready")
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        topic = p.prefix + "feedback.signals"
        first, second = _window(0), _window(1)
        for value in (first.model_dump_json().encode(), b'{"scope_type": "category"}', b"not json",
                      second.model_dump_json().encode(), first.model_dump_json().encode()):
            producer.send(topic, value=value, key=b"category:delivery")
        producer.flush(30)
        producer.close()

        wait_for(lambda: _count_windows(p) >= 2, 60, interval=0.5, what="two windows stored")
        letters = p.dead_letters(lambda d: d.stage == "alerts", expect=2, timeout=60)
        assert sorted(d.reason for d in letters) == ["invalid_signal_window", "invalid_signal_window"]
        # the original bytes
        assert sorted(d.payload for d in letters) == sorted(['{"scope_type": "category"}', "not json"])
        assert all(d.topic == topic and d.offset is not None for d in letters)
        wait_for(lambda: p.metric("alerts", "feedback_dead_lettered_total", stage="alerts",
                                  reason="invalid_signal_window") >= 2, 30, what="dead letters counted")
        assert _count_windows(p) == 2  # the window sent twice is stored once
        proc = p.procs["alerts"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        p.stop()
        engine.dispose()


def _count_windows(p: Pipeline) -> int:
    try:
        return p.count(table="signal_windows")
    except Exception:  # the sink has not migrated the warehouse yet
        return 0
