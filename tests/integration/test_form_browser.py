"""A person's view: headless Chromium fills in the feedback form and sees the thank-you page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration



def test_fill_and_submit_the_form(browser: Any, pipeline: Pipeline, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{pipeline.url}/forms/default")
    assert page.title() == "Tell us how we did"
    comment = f"Checkout was quick but the courier left my parcel in the rain ({uuid.uuid4().hex[:6]})"
    page.click("label[for=nps-6]")
    page.select_option("#csat", "2")
    page.fill("#comment", comment)
    page.fill("#email", "shopper@example.org")
    page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
    page.click("#submit")
    page.wait_for_selector("#thanks", timeout=15_000)
    assert "Thank you" in page.inner_text("#thanks")
    rows = wait_for(lambda: pipeline.rows("text = :t", {"t": comment}), 30, what="form row")
    row = rows[0]
    assert row["source"] == "webform" and row["nps_score"] == 6 and row["csat_score"] == 2
    assert row["nps_class"] == "detractor" and row["customer_ref"].startswith("c_")
    assert "delivery" in pipeline.categories(row["feedback_id"])
    # reloading the thank-you page (a browser resubmit) posts the same submission id: still one row
    page.reload()
    page.wait_for_selector("#thanks", timeout=15_000)
    marker = f"marker-{uuid.uuid4()}"
    import httpx

    httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": marker, "text": "marker"})
    wait_for(lambda: pipeline.count(f"source_ref = '{marker}'") == 1, 30, what="marker")
    assert len(pipeline.rows("text = :t", {"t": comment})) == 1
    page.close()
