"""A small chaos loop: the processor and the sink are SIGKILLed repeatedly while records flow in."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeline.config import CommonSettings
from pipeline.publisher import Publisher
from pipeline.schema import FeedbackRecord
from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

TOTAL = 4000
ROUNDS = 3


def test_repeated_sigkill_under_load_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    p = Pipeline(kafka_bootstrap, url, make_engine(url), tmp_path)
    p.env["FEEDBACK_SINK_BATCH_SIZE"] = "250"
    p.start_all()
    run = uuid.uuid4().hex[:8]
    errors: list[BaseException] = []

    def load() -> None:  # ~25 s of steady input
        pub = Publisher(CommonSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=p.prefix))
        try:
            for start in range(0, TOTAL, 150):
                pub.publish([FeedbackRecord(source_ref=f"{run}-{i}", text=f"Parcel {i} arrived damaged")
                             for i in range(start, min(start + 150, TOTAL))])
                time.sleep(1.0)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            pub.close()

    producer = threading.Thread(target=load)
    producer.start()
    try:
        for _ in range(ROUNDS):
            for name in ("processor", "sink"):
                time.sleep(3)
                p.kill(name)
                time.sleep(1)
                p.start(name)
        producer.join(timeout=120)
        assert not errors, errors
        where = f"source_ref LIKE '{run}-%'"
        wait_for(lambda: p.count(where) == TOTAL, 180, what=f"{TOTAL} rows after the chaos")
        time.sleep(1)
        assert p.count(where) == TOTAL
        assert not p.dead_letters(lambda d: d.reason != "", expect=1, timeout=3)
    finally:
        p.stop()
        p.engine.dispose()
