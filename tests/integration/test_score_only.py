"""Score-only answers through the running pipeline: the API, the form and the import store them,
with sentiment ``not_assessed`` and no category, and they count in NPS and CSAT."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


def nps_of(pipeline: Pipeline, channel: str) -> tuple[int, float]:
    """Responses and NPS of one channel, from the analysts' view."""
    with pipeline.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT COUNT(*), 100.0 * (SUM(CASE WHEN nps_class = 'promoter' THEN 1 ELSE 0 END)"
            " - SUM(CASE WHEN nps_class = 'detractor' THEN 1 ELSE 0 END)) / COUNT(*)"
            " FROM v_feedback WHERE channel = :c AND nps_score IS NOT NULL"), {"c": channel}).one()
    return int(row[0]), float(row[1] or 0)


def letters_id() -> str:
    """A run id of letters only: the processor redacts structured fields like text, and a run of hex
    digits can read as a phone number (``survey-20261207`` is stored as ``survey-[PHONE]``)."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def test_score_only_events_are_stored_and_counted(pipeline: Pipeline) -> None:
    channel = f"survey-{letters_id()}"
    records = [{"source_ref": f"{channel}-{i}", "channel": channel, "nps_score": s}
               for i, s in enumerate([10, 9, 3])]
    records.append({"source_ref": f"{channel}-w", "channel": channel, "nps_score": 7, "text": "Fine, a bit slow"})
    r = httpx.post(f"{pipeline.url}/v1/events", json=records, timeout=30)
    assert r.status_code == 202, r.text
    wait_for(lambda: pipeline.count(f"channel = '{channel}'") == 4, 120, what="score-only rows")
    rows = {r["source_ref"]: r for r in pipeline.rows("channel = :c", {"c": channel})}
    only = rows[f"{channel}-2"]
    assert only["text"] == "" and only["sentiment_label"] == "not_assessed" and only["primary_category"] is None
    assert only["nps_class"] == "detractor" and pipeline.categories(only["feedback_id"]) == []
    assert rows[f"{channel}-w"]["primary_category"] is not None
    # 2 promoters, 1 passive, 1 detractor of 4: NPS +25, every answer counted (before: only the worded one)
    assert nps_of(pipeline, channel) == (4, 25.0)


def test_neither_score_nor_text_is_422_with_json(pipeline: Pipeline) -> None:
    r = httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": f"x-{uuid.uuid4()}"}, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "validation_failed"
    assert "a text or a score" in r.json()["details"][0]["msg"]
    r = httpx.post(f"{pipeline.url}/forms/default", json={"comment": " "}, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "validation_failed"


def test_score_only_form_answer_is_stored(pipeline: Pipeline) -> None:
    form = f"f{letters_id()}"
    for sid, fields in [(str(uuid.uuid4()), {"nps_score": "9"}), (str(uuid.uuid4()), {"csat_score": "2"})]:
        r = httpx.post(f"{pipeline.url}/forms/{form}", data={**fields, "comment": "", "submission_id": sid},
                       timeout=30)
        assert r.status_code == 202, r.text
    wait_for(lambda: pipeline.count(f"channel = 'form:{form}'") == 2, 60, what="form rows")
    rows = pipeline.rows("channel = :c", {"c": f"form:{form}"})
    assert {(r["nps_score"], r["csat_score"], r["text"], r["sentiment_label"]) for r in rows} == {
        (9, None, "", "not_assessed"), (None, 2, "", "not_assessed")}
    assert nps_of(pipeline, f"form:{form}") == (1, 100.0)
