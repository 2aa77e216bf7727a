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
