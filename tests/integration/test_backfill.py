"""Backfill through the real pipeline (broker, processor, sink; SQLite and PostgreSQL): survey exports
imported twice without duplicates, rejected rows dead-lettered with reasons, dead letters fixed and
replayed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from pipeline.config import CommonSettings
from pipeline.publisher import Publisher
from pipeline.schema import customer_ref
from sinks.warehouse.db import migrate
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import Pipeline, wait_for
from tests.integration.warehouse_data import run_cli

pytestmark = pytest.mark.integration

@pytest.fixture(scope="session", autouse=True)
def _schema_before_the_pipeline(warehouse: Engine) -> None:
    """Migrate before the pipeline starts: its warm-up reads the feedback table while the sink may
    still be migrating (a race that shows on a busy machine)."""
    migrate(warehouse)


ENV_KEYS = ("FEEDBACK_KAFKA_BOOTSTRAP", "FEEDBACK_TOPIC_PREFIX", "FEEDBACK_WAREHOUSE_URL", "FEEDBACK_DATA_DIR",
            "FEEDBACK_CUSTOMER_HASH_KEY")


def feedback(pipeline: Pipeline, args: list[str]) -> dict[str, Any]:
    """Run a ``feedback`` command against the pipeline's broker and warehouse; its ``--json`` output."""
    env = {k: pipeline.env[k] for k in ENV_KEYS} | {"FEEDBACK_LOG_FORMAT": "json"}
    result = run_cli([*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def survey_csv(path: Path, run: str) -> None:
    path.write_text(
        "Response ID,Submitted At,How likely are you to recommend us?,What could we do better?,Email\n"
        f"{run}-1,2025-03-01 14:30,9,Great service and a friendly courier,ann@example.org\n"
        f"{run}-2,2025-03-02 09:00,2,The parcel arrived a week late and support never answered,bob@example.org\n"
        f"{run}-3,2025-03-03 10:00,11,Score out of range,carl@example.org\n"
        f"{run}-4,2025-03-04 11:00,7,,dora@example.org\n"
        f"{run}-5,03/05/2025,8,Bad date format,eve@example.org\n"
        f"{run}-2,2025-03-02 09:00,2,The parcel arrived a week late and support never answered,bob@example.org\n"
        f"{run}-6,2025-03-06 12:00,10,Excellent value for money,\n"
        f"{run}-7,2025-03-07 12:00,,,fred@example.org\n"
    )


def test_import_csv_twice_without_duplicates(pipeline: Pipeline, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    path = tmp_path / f"nps-{run}.csv"
    survey_csv(path, run)
    rejects = tmp_path / "rejects.jsonl"
    first = feedback(pipeline, ["import", str(path), "--rejects", str(rejects)])
    # dora's row (a score, no comment) is a score-only answer; fred's (neither) is refused
    assert first == {"read": 8, "published": 4, "rejected": 3, "duplicates": 1}
    assert sorted(json.loads(line)["reason"] for line in rejects.read_text().splitlines()) == [
        "empty_text", "invalid_date", "invalid_nps"]
    where = f"channel = 'import:nps-{run}'"
    wait_for(lambda: pipeline.count(where) == 4, 60, what="imported rows")
    rows = {r["source_ref"]: r for r in pipeline.rows(where)}
    bob = rows[f"import:nps-{run}:{run}-2"]
    assert bob["nps_score"] == 2 and bob["nps_class"] == "detractor"
    assert bob["customer_ref"] == customer_ref("bob@example.org", TEST_CUSTOMER_KEY.encode())
    assert "delivery" in pipeline.categories(bob["feedback_id"])
    event_time = bob["event_time"]
    event_time = datetime.fromisoformat(event_time) if isinstance(event_time, str) else event_time
    assert event_time.replace(tzinfo=UTC) == datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
    assert rows[f"import:nps-{run}:{run}-6"]["customer_ref"] is None
    dora = rows[f"import:nps-{run}:{run}-4"]
    assert (dora["text"], dora["nps_class"], dora["sentiment_label"]) == ("", "passive", "not_assessed")

    again = feedback(pipeline, ["import", str(path)])
    assert again == {"read": 8, "published": 0, "rejected": 3, "duplicates": 5}
    letters = pipeline.dead_letters(lambda d: d.stage == "import" and f"nps-{run} row" in d.detail, expect=6)
    assert {d.reason for d in letters} == {"empty_text", "invalid_date", "invalid_nps"}
    assert "carl@example.org" in letters[0].payload or any("carl@" in d.payload for d in letters)
    assert pipeline.count(where) == 4


def test_import_xlsx_with_a_mapping_file(pipeline: Pipeline, tmp_path: Path) -> None:
    from openpyxl import Workbook

    run = uuid.uuid4().hex[:8]
    wb = Workbook()
    ws = wb.active
    ws.append(["When", "Recommend (0-10)", "Satisfaction", "Your words", "Plan"])
    ws.append([datetime(2025, 1, 10, 8, 0), 10, 5, f"Smooth checkout {run}", "premium"])
    ws.append([datetime(2025, 1, 11, 8, 0), 4, 2, f"The invoice charged me twice {run}", "basic"])
    path = tmp_path / "export.xlsx"
    wb.save(path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(f"dataset: xl-{run}\nsource: webform\ncolumns:\n  date: When\n  nps: Recommend (0-10)\n"
                       "  csat: Satisfaction\n  text: Your words\n  product: Plan\ntimezone: Europe/Berlin\n")
    assert feedback(pipeline, ["import", str(path), "--mapping", str(mapping)]) == {
        "read": 2, "published": 2, "rejected": 0, "duplicates": 0}
    wait_for(lambda: pipeline.count(f"channel = 'import:xl-{run}'") == 2, 60, what="xlsx rows")
    row = pipeline.rows(f"channel = 'import:xl-{run}' AND product = 'basic'")[0]
    assert row["source"] == "webform" and row["csat_score"] == 2 and row["nps_score"] == 4
    when = row["event_time"]
    when = datetime.fromisoformat(when) if isinstance(when, str) else when
    assert when.replace(tzinfo=UTC) == datetime(2025, 1, 11, 7, 0, tzinfo=UTC)  # 08:00 Berlin


def test_replay_fixed_dead_letters(pipeline: Pipeline, tmp_path: Path) -> None:
    marker = f"replay-{uuid.uuid4().hex[:8]}"
    settings = CommonSettings(kafka_bootstrap=pipeline.bootstrap, topic_prefix=pipeline.prefix)
    pub = Publisher(settings)
    try:
        pub.publish_bytes(pub.topics.raw, [(None, json.dumps(
            {"source_ref": marker, "text": "The courier was late again", "nps_score": "eleven"}).encode())])
    finally:
        pub.close()
    pipeline.dead_letters(lambda d: marker in d.payload and d.reason == "schema_violation")

    export = tmp_path / "dead.jsonl"
    dry = feedback(pipeline, ["replay", "--from-dlq", "--reason", "schema_violation", "--dry-run",
                              "--export", str(export)])
    assert dry["dry_run"] and dry["still_invalid"] >= 1 and dry["exported"] >= 1
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    mine = next(line for line in lines if marker in line["payload"])
    fixed = json.loads(mine["payload"]) | {"nps_score": 9}
    export.write_text(json.dumps(mine | {"payload": json.dumps(fixed)}) + "\n")

    done = feedback(pipeline, ["replay", "--from-dlq", "--reason", "schema_violation", "--fixes", str(export)])
    assert done["replayed"] == 1 and done["by_stage"] == {"processor": 1}
    wait_for(lambda: pipeline.count(f"source_ref = '{marker}'") == 1, 60, what="replayed row")
    assert pipeline.rows(f"source_ref = '{marker}'")[0]["nps_score"] == 9

    again = feedback(pipeline, ["replay", "--from-dlq", "--reason", "schema_violation", "--fixes", str(export)])
    assert again["replayed"] == 0 and again["already_written"] == 1


def test_dry_run_shows_the_mapping_and_a_file_of_rejects_fails(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("Submitted At,How likely are you to recommend us?,Comments,Notes\n"
                    "31/01/2025 14:30,9,Lovely,x\n01/02/2025 09:00,3,Late again,y\n")
    env = {"FEEDBACK_DATA_DIR": str(tmp_path / "data"), "FEEDBACK_LOG_FORMAT": "json"}
    failed = run_cli(["import", str(path), "--text", "Comments", "--dry-run"], env=env)
    assert failed.exit_code == 1, failed.output  # every row rejected: not a success
    out = " ".join(failed.output.split())
    assert "date <- 'Submitted At' (found from the headers)" in out and "text <- 'Comments' (named)" in out
    assert "nps <- 'How likely are you to recommend us?'" in out and "not used: 'Notes'" in out
    assert "rejected 2 x invalid_date" in out and "--date-format" in out and "every row was rejected (2)" in out
    fixed = run_cli(["import", str(path), "--text", "Comments", "--dry-run", "--date-format", "%d/%m/%Y %H:%M"],
                    env=env)
    assert fixed.exit_code == 0 and "would publish 2" in fixed.output, fixed.output
    assert not (tmp_path / "data").exists()  # a dry run creates no key and no warehouse


def test_send_prints_the_id_as_the_warehouse_stores_it(pipeline: Pipeline) -> None:
    env = {k: pipeline.env[k] for k in ENV_KEYS} | {"FEEDBACK_HTTP_PORT": str(pipeline.http_port),
                                                   "FEEDBACK_LOG_FORMAT": "json"}
    result = run_cli(["send", "The app keeps logging me out", "--nps", "4"], env=env)
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().splitlines()[-1]
    found = wait_for(lambda: pipeline.rows("feedback_id = :id", {"id": printed}) or None, 60, what="sent row")
    assert found[0]["nps_score"] == 4
    stored = found[0]["feedback_id"]
    assert printed == (stored if isinstance(stored, str) else str(stored))
