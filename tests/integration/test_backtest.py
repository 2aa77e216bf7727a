"""``feedback backtest`` as a user runs it (the real command in a subprocess): the issue's delivery
scenario replayed from a CSV file through the processor's enrichment and windows and the alert
sink's detector and incidents, offline; malformed files named by row and column, no traceback."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
ONSET = T0 + timedelta(days=9)
NEG = ["The parcel arrived late and the box was crushed, terrible delivery.",
       "My package never arrived and tracking is useless. Very disappointed."]
FINE = ["Delivery was quick and the courier was friendly.", "The parcel came on time, good delivery.",
        "The package was delivered yesterday."]
OTHER = ["The invoice was clear and the payment went through.", "Great app, love it!",
         "The checkout page is easy to use."]


def write_scenario(path: Path, days: int = 12, seed: int = 1) -> None:
    """20 delivery + 20 other responses an hour; delivery's negative share 20 % -> 60 % from day 10."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "event_time", "channel"])
        k = 0
        for h in range(days * 24):
            start = T0 + timedelta(hours=h)
            p = 0.6 if start >= ONSET else 0.2
            for texts in [[NEG if rng.random() < p else FINE for _ in range(20)], [OTHER] * 20]:
                for pool in texts:
                    at = start + timedelta(seconds=rng.uniform(0, 3599))
                    w.writerow([k, rng.choice(pool), at.isoformat(), "web"])
                    k += 1


def backtest(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEEDBACK_DATA_DIR": str(tmp), "FEEDBACK_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "pipeline", "backtest", *args], env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_delivery_scenario_replayed_offline_opens_one_incident_driven_by_delivery(tmp_path: Path) -> None:
    data = tmp_path / "quarter.csv"
    write_scenario(data)
    done = backtest("--data", str(data), "--json", tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["windows_judged"] > 12 * 24 * 4 and out["scopes"] >= 5  # overall, source, channel, 2 categories
    [incident] = out["incidents"]
    assert (incident["driver_scope_type"], incident["driver_scope_value"]) == ("category", "delivery")
    started = datetime.fromisoformat(incident["started_at"])
    assert ONSET - timedelta(hours=6) <= started <= ONSET + timedelta(hours=24)
    assert datetime.fromisoformat(incident["opened_at"]) <= ONSET + timedelta(hours=24)  # event time of judging
    assert incident["explained_share"] >= 0.7 and "negative_share" in incident["signals"]
    assert len(incident["alerts"]) >= 2 and set(incident["examples"]) <= set(NEG) and incident["examples"]
    readable = backtest("--data", str(data), tmp=tmp_path)
    assert readable.returncode == 0 and "category=delivery" in readable.stdout and "1 incident(s)" in readable.stdout


@pytest.mark.parametrize(("name", "content", "says"), [
    ("bad_time.csv", "text,event_time\nfine,2026-03-02T00:00:00Z\nlate again,last tuesday\n",
     "row 3, column event_time"),
    ("bad_score.csv", "text,event_time,nps\nok,2026-03-02T00:00:00Z,11\n", "row 2, column nps"),
    ("no_text.csv", "text,event_time\n,2026-03-02T00:00:00Z\n", "row 2, column text"),
    ("no_header.csv", "comment,when\nfine,2026-03-02\n", "row 1, column text/event_time"),
    ("bad.jsonl", '{"text": "ok", "event_time": "2026-03-02T00:00:00Z"}\n{"text": "cut\n', "row 2"),
])
def test_a_malformed_file_is_named_by_row_and_column_without_a_traceback(tmp_path: Path, name: str, content: str,
                                                                         says: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    done = backtest("--data", str(path), tmp=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_missing_file_and_missing_mode_are_clear(tmp_path: Path) -> None:
    done = backtest("--data", str(tmp_path / "nope.csv"), tmp=tmp_path)
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr
    neither = backtest(tmp=tmp_path)
    assert neither.returncode == 2 and "--data FILE or --from-warehouse" in " ".join(neither.stderr.split())


def test_from_warehouse_replays_the_stored_labels(tmp_path: Path) -> None:
    """The same scenario already in the warehouse (labels as stored): one incident driven by delivery."""
    import uuid

    from sqlalchemy import insert

    from sinks.warehouse.db import make_engine, migrate
    from sinks.warehouse.models import Feedback, FeedbackCategory

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    migrate(engine)
    rng = random.Random(2)
    rows, cats = [], []
    for h in range(12 * 24):
        start = T0 + timedelta(hours=h)
        p = 0.6 if start >= ONSET else 0.2
        for category, share in (("delivery", p), ("other", 0.2)):
            for _ in range(20):
                fid, at = uuid.uuid4(), start + timedelta(seconds=rng.uniform(0, 3599))
                label = "negative" if rng.random() < share else "positive"
                rows.append({"feedback_id": fid, "schema_version": 1, "source": "event", "source_ref": str(fid),
                             "text": "x", "tags": [], "attributes": {}, "sentiment_polarity": -0.5 if label ==
                             "negative" else 0.5, "sentiment_subjectivity": 0.5, "sentiment_label": label,
                             "sentiment_analyzer": "test", "primary_category": category, "event_time": at,
                             "event_date": at.date(), "received_at": at, "processed_at": at, "written_at": at})
                cats.append({"feedback_id": fid, "category": category, "confidence": 0.9, "rank": 0})
    with engine.begin() as conn:
        conn.execute(insert(Feedback), rows)
        conn.execute(insert(FeedbackCategory), cats)
    engine.dispose()
    env = {**os.environ, "FEEDBACK_DATA_DIR": str(tmp_path), "FEEDBACK_WAREHOUSE_URL": url,
           "FEEDBACK_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "pipeline", "backtest", "--from-warehouse", "--since",
                           T0.date().isoformat(), "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    [incident] = out["incidents"]
    assert (incident["driver_scope_type"], incident["driver_scope_value"]) == ("category", "delivery")
    assert out["records"] == len(rows) and out["scopes"] == 4  # overall, source, two categories
