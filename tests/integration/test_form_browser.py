"""A person's view: headless Chromium fills in the feedback form.

Against the running pipeline: a full answer, a score-only answer, an error that keeps every value,
a German form, no JavaScript (consent through the running pipeline: test_followups.py). Against the
HTTP service alone (uvicorn in a thread, the kernel's MemoryPublisher so the broker's refusal can be
ordered): consent on and off, the 429, 503, 413 and 408 pages. And a 375 px wide screenshot whose
controls are measured for 44 px touch targets.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet

from connectors.http.app import create_app
from pipeline.broker import free_port, port_open
from pipeline.config import HttpSettings
from pipeline.errors import TransientError
from pipeline.testing import MemoryPublisher
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

#: Every control a customer touches on the form (the radios' labels are their targets).
TARGETS = ["label[for=nps-0]", "label[for=nps-10]", "#csat_score", "#comment", "#email", "label.consent", "#submit"]


class Service:
    """The HTTP service alone on a free port, publishing into a MemoryPublisher."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.publisher = MemoryPublisher()
        self.settings = HttpSettings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path,
                                     customer_hash_key=TEST_CUSTOMER_KEY,
                                     contact_key=Fernet.generate_key().decode(), **settings)
        port = free_port()
        config = uvicorn.Config(create_app(self.settings, self.publisher), host="127.0.0.1", port=port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Service:
        self.thread.start()
        wait_for(lambda: port_open("127.0.0.1", int(self.url.rsplit(":", 1)[1])), 30, what="http service")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(tmp_path, form_rate_limit="2/minute", max_record_bytes=2048, body_timeout_seconds=3) as s:
        yield s


def fill(page: Any, nps: int | None = None, csat: str | None = None, comment: str | None = None,
         email: str | None = None, consent: bool = False) -> None:
    if nps is not None:
        page.click(f"label[for=nps-{nps}]")
    if csat is not None:
        page.select_option("#csat_score", csat)
    if comment is not None:
        page.fill("#comment", comment)
    if email is not None:
        page.fill("#email", email)
    if consent:
        page.check("#consent")


def submit(page: Any) -> int:
    """Click send and wait for the answer page; its HTTP status."""
    with page.expect_navigation(timeout=30_000) as nav:
        page.click("#submit")
    response = nav.value
    assert response is not None and "text/html" in response.headers["content-type"]
    return int(response.status)


def assert_kept(page: Any, nps: int, csat: str, comment: str, email: str, consent: bool | None) -> None:
    assert page.is_checked(f"#nps-{nps}")
    assert page.input_value("#csat_score") == csat
    assert page.input_value("#comment") == comment
    assert page.input_value("#email") == email
    if consent is not None:  # offered only where contacts can be sealed (FEEDBACK_CONTACT_KEY)
        assert page.is_checked("#consent") is consent


def test_fill_and_submit_the_form(browser: Any, pipeline: Pipeline, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{pipeline.url}/forms/default")
    assert page.title() == "Tell us how we did"
    comment = f"Checkout was quick but the courier left my parcel in the rain ({uuid.uuid4().hex[:6]})"
    fill(page, nps=6, csat="2", comment=comment, email="shopper@example.org")
    page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
    assert submit(page) == 200
    assert "Thank you" in page.inner_text("#thanks")
    assert page.locator("#contact-promise").count() == 0  # no consent: no promise of a reply
    rows = wait_for(lambda: pipeline.rows("text = :t", {"t": comment}), 30, what="form row")
    row = rows[0]
    assert row["source"] == "webform" and row["nps_score"] == 6 and row["csat_score"] == 2
    assert row["nps_class"] == "detractor" and row["customer_ref"].startswith("c_")
    assert "delivery" in pipeline.categories(row["feedback_id"])
    # reloading the thank-you page (a browser resubmit) posts the same submission id: still one row
    page.reload()
    page.wait_for_selector("#thanks", timeout=15_000)
    marker = f"marker-{uuid.uuid4()}"
    httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": marker, "text": "marker"}, timeout=30)
    wait_for(lambda: pipeline.count(f"source_ref = '{marker}'") == 1, 30, what="marker")
    assert len(pipeline.rows("text = :t", {"t": comment})) == 1
    page.close()


def test_a_score_only_answer_is_sent_and_stored(browser: Any, pipeline: Pipeline) -> None:
    form = f"s{uuid.uuid4().hex[:8]}"
    page = browser.new_page()
    page.goto(f"{pipeline.url}/forms/{form}")
    fill(page, nps=9)
    assert submit(page) == 200 and page.locator("#thanks").count() == 1
    rows = wait_for(lambda: pipeline.rows("channel = :c", {"c": f"form:{form}"}), 60, what="score-only row")
    assert (rows[0]["text"], rows[0]["nps_class"], rows[0]["sentiment_label"]) == ("", "promoter", "not_assessed")
    # nothing at all: the form again, with the message next to the score, nothing stored
    page.goto(f"{pipeline.url}/forms/{form}")
    assert submit(page) == 422
    assert page.inner_text("#nps-msg") == "Please choose a score or write a comment."
    page.close()


def test_an_error_keeps_every_value(browser: Any, pipeline: Pipeline) -> None:
    form = f"e{uuid.uuid4().hex[:8]}"
    page = browser.new_page()
    page.goto(f"{pipeline.url}/forms/{form}")
    comment = "The app logs me out\nevery time I switch tabs."
    assert page.locator("#consent").count() == 0  # no FEEDBACK_CONTACT_KEY here: no contact offered
    fill(page, nps=3, csat="2", comment=comment, email="someone@")
    assert submit(page) == 422
    assert_kept(page, 3, "2", comment, "someone@", None)
    assert page.inner_text("#email-msg") == "Please enter a valid e-mail address, like name@example.com."
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert "value is not" not in page.content() and "pydantic" not in page.content()  # plain language only
    page.fill("#email", "someone@example.org")
    assert submit(page) == 200
    assert page.locator("#contact-promise").count() == 0  # no consent: no reply promised
    rows = wait_for(lambda: pipeline.rows("channel = :c", {"c": f"form:{form}"}), 60, what="corrected row")
    assert len(rows) == 1 and rows[0]["text"] == comment and rows[0]["nps_score"] == 3
    page.close()


def test_german_form_without_javascript(browser: Any, pipeline: Pipeline) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{pipeline.url}/forms/de")
    assert page.title() == "Wie zufrieden waren Sie mit uns?"
    assert page.get_attribute("html", "lang") == "de"
    # every control has a label (the radios through theirs, inside a fieldset with a legend)
    unlabelled = page.eval_on_selector_all(
        "form input:not([type=hidden]):not(#website), form select, form textarea",
        "els => els.filter(e => !e.labels || e.labels.length === 0).map(e => e.id)")
    assert unlabelled == []
    assert "freiwillig" in page.inner_text("label[for=comment]")
    comment = f"Die Lieferung kam pünktlich ({uuid.uuid4().hex[:6]})"
    fill(page, nps=10, comment=comment)
    assert submit(page) == 200 and "Vielen Dank" in page.inner_text("#thanks")
    rows = wait_for(lambda: pipeline.rows("text = :t", {"t": comment}), 60, what="German row")
    assert rows[0]["language"] == "de" and rows[0]["channel"] == "form:de"
    context.close()


def test_rate_limited_page_keeps_the_answers(browser: Any, service: Service) -> None:
    page = browser.new_page()
    for _ in range(2):  # the limit: 2 a minute
        page.goto(f"{service.url}/forms/default")
        fill(page, nps=8)
        assert submit(page) == 200
    page.goto(f"{service.url}/forms/default")
    fill(page, nps=4, csat="3", comment="Third answer, sent too soon", email="a@example.org", consent=True)
    with page.expect_navigation(timeout=30_000) as nav:
        page.click("#submit")
    response = nav.value
    assert response.status == 429 and "text/html" in response.headers["content-type"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "wait a minute" in page.inner_text("#notice")
    assert_kept(page, 4, "3", "Third answer, sent too soon", "a@example.org", True)
    assert len(service.publisher.records) == 2
    page.close()


def test_broker_refusal_page_keeps_the_answers_and_a_resend_counts_once(browser: Any, tmp_path: Path) -> None:
    with Service(tmp_path, form_rate_limit="") as service:
        broker_refusal(browser, service)


def broker_refusal(browser: Any, service: Service) -> None:
    page = browser.new_page()
    page.goto(f"{service.url}/forms/default")
    fill(page, nps=2, comment="The invoice is wrong")
    service.publisher.fail.append(TransientError("broker down", retry_after=3))
    assert submit(page) == 503
    assert "could not save your answer" in page.inner_text("#notice")
    assert_kept(page, 2, "", "The invoice is wrong", "", False)
    # sent again, as a customer would (the service may still refuse while the broker comes back):
    # the same submission id each time, so the same feedback id
    deadline = time.monotonic() + 60
    while (status := submit(page)) == 503 and time.monotonic() < deadline:
        assert_kept(page, 2, "", "The invoice is wrong", "", False)
        time.sleep(1)
    assert status == 200
    [record] = service.publisher.records
    assert record.text == "The invoice is wrong" and record.nps_score == 2
    page.close()


def test_too_long_and_too_slow_get_html_pages(browser: Any, service: Service) -> None:
    page = browser.new_page()
    page.goto(f"{service.url}/forms/default")
    fill(page, nps=5, comment="x" * 3000)  # over max_record_bytes (2048)
    assert submit(page) == 413
    assert "too long" in page.inner_text("#notice") and page.locator("#feedback-form").count() == 1
    assert service.publisher.records == []
    page.close()
    # a browser whose body never arrives gets the 408 page, not JSON
    import socket

    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(b"POST /forms/default HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nnps_score=5")
        started = time.monotonic()
        answer = b""
        while b"</html>" not in answer and time.monotonic() - started < 60:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 408") and "text/html" in head
    assert b"took too long" in answer


@pytest.mark.parametrize("form", ["default", "de", "fr", "es"])
def test_touch_targets_on_a_375_px_screen(browser: Any, service: Service, tmp_path: Path, form: str) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, has_touch=True)
    page = context.new_page()
    page.goto(f"{service.url}/forms/{form}")
    for state in ("fresh", "with errors"):
        page.screenshot(path=str(tmp_path / f"form-{form}-375-{state}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
        for selector in [*TARGETS, *[f"label[for=nps-{n}]" for n in range(1, 10)]]:
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["height"] >= 44 and box["width"] >= 44, (state, selector, box)
        if state == "fresh":
            fill(page, email="not an address")
            assert submit(page) == 422
    context.close()


def test_consent_on_and_off(browser: Any, tmp_path: Path) -> None:
    with Service(tmp_path, form_rate_limit="") as service:
        page = browser.new_page()
        page.goto(f"{service.url}/forms/default")
        fill(page, nps=2, email="ann@example.org", consent=True)
        assert submit(page) == 200 and page.locator("#contact-promise").count() == 1
        page.goto(f"{service.url}/forms/default")
        fill(page, nps=2, email="bob@example.org")
        assert submit(page) == 200 and page.locator("#contact-promise").count() == 0
        # consent without an address: the form asks for one, next to the e-mail field
        page.goto(f"{service.url}/forms/default")
        fill(page, nps=2, consent=True)
        assert submit(page) == 422
        assert page.inner_text("#email-msg") == "Please enter your e-mail address so that we can contact you."
        assert_kept(page, 2, "", "", "", True)
        with_consent, without = service.publisher.records  # the third was refused before publishing
        # the address travels sealed in the record's contact field, never in its attributes
        assert with_consent.contact and "ann@" not in with_consent.contact and without.contact is None
        assert with_consent.attributes == {} and without.attributes == {}
        page.close()
