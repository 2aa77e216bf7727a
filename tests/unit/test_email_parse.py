"""E-mail parsing: every kind of message a support mailbox receives becomes one clear outcome."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.email.parse import Outcome, ParseOptions, parse_message, raw_ref
from pipeline.schema import MAX_TEXT_CHARS, customer_ref, derive_feedback_id
from tests.bench import email_samples as samples

KEY = b"unit-test-key"
OPTIONS = ParseOptions(customer_key=KEY, reply_languages=("en", "de"))
WHEN = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def parse(raw: bytes, **kw: object) -> Outcome:
    return parse_message(raw, OPTIONS, **kw)  # type: ignore[arg-type]


def record_of(raw: bytes, **kw: object) -> Any:
    out = parse(raw, **kw)
    assert out.kind == "record", (out.reason, out.detail)
    assert out.record is not None
    return out.record


def test_plain_text_fields() -> None:
    msg = samples.plain("The parcel arrived late.", msgid="<p1@customer.example>", when=WHEN,
                        headers={"Delivered-To": "Feedback@Shop.example", "Content-Language": "en-GB"})
    rec = record_of(msg.as_bytes())
    assert rec.source == "email" and rec.source_ref == "p1@customer.example"
    assert rec.feedback_id == derive_feedback_id("email", "p1@customer.example")
    assert rec.text == "The parcel arrived late."
    assert rec.original_text is None  # nothing was cut, so text is the original
    assert rec.subject == "Feedback" and rec.language == "en-GB"
    assert rec.channel is None  # no header names the channel (Delivered-To, To: may name anyone)
    assert rec.customer_ref == customer_ref("jane@customer.example", KEY)
    assert "jane" not in (rec.customer_ref or "")
    assert rec.event_time == WHEN and rec.thread_ref == "msg:" + hashlib.sha256(b"p1@customer.example").hexdigest()[:32]
    assert rec.attributes["attachments"] == 0 and rec.attributes["truncated"] is False


def test_channel_is_the_mailbox_read_never_a_header() -> None:
    msg = samples.plain("hi there", headers={"Delivered-To": "jane.doe@shop.example"})
    assert "jane" not in str(record_of(msg.as_bytes()).model_dump())  # To:/Delivered-To: go nowhere
    assert record_of(msg.as_bytes(), channel="Inbox@IMAP.example").channel == "inbox"
    assert record_of(msg.as_bytes(), channel="survey-replies").channel == "survey-replies"


def test_html_only_is_readable_text_without_script_or_style() -> None:
    rec = record_of(samples.html_only("The checkout <b>keeps</b> failing.\nPlease fix it.").as_bytes())
    assert rec.attributes["content_type"] == "text/html"
    assert rec.text == "The checkout keeps failing.\nPlease fix it."
    assert "track(" not in (rec.original_text or "") and "color" not in (rec.original_text or "")
    assert "thank you for contacting us" in (rec.original_text or "")  # the quote stays in the original


def test_multipart_alternative_prefers_plain() -> None:
    rec = record_of(samples.alternative("Billing charged me twice.").as_bytes())
    assert rec.attributes["content_type"] == "text/plain"
    assert rec.text == "Billing charged me twice."
    assert rec.attributes["attachments"] == 0


@pytest.mark.parametrize("charset", ["iso-8859-1", "windows-1252", "utf-8"])
@pytest.mark.parametrize("cte", ["quoted-printable", "base64", "8bit"])
def test_charsets_and_transfer_encodings(charset: str, cte: str) -> None:
    text = "Très déçu: the “premium” delivery was late." if charset != "iso-8859-1" else "Très déçu, zu spät."
    if charset == "iso-8859-1":
        text = text.replace("“", '"')
    rec = record_of(samples.plain(text, charset=charset, cte=cte).as_bytes())
    assert rec.text == text and rec.attributes["decode_errors"] is False


def test_latin1_label_is_read_as_windows_1252() -> None:
    raw = (b"From: a@customer.example\r\nMessage-ID: <cp@x>\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"\r\n\x93Smart quotes\x94 and \x80 sign\r\n")
    assert record_of(raw).text == "\u201cSmart quotes\u201d and \u20ac sign"


def test_utf8_with_bad_bytes_and_unknown_charset_never_crash() -> None:
    raw = (b"From: a@customer.example\r\nMessage-ID: <bad@x>\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"\r\nGood start \xff\xfe broken \xc3\x28 end\r\n")
    rec = record_of(raw)
    assert rec.text.startswith("Good start") and "\ufffd" in rec.text and rec.attributes["decode_errors"] is True
    raw2 = raw.replace(b"charset=utf-8", b"charset=x-made-up").replace(b"<bad@x>", b"<bad2@x>")
    assert record_of(raw2).text.startswith("Good start")  # unknown charset: windows-1252 fallback


def test_reply_chain_keeps_only_the_new_text() -> None:
    rec = record_of(samples.plain(samples.reply_body("Still no refund after two weeks.")).as_bytes())
    assert rec.text == "Still no refund after two weeks."
    assert rec.attributes["reply_cut"] is True
    assert "wrote:" in (rec.original_text or "") and "Jane Doe" in (rec.original_text or "")


def test_outlook_reply_block_is_removed() -> None:
    rec = record_of(samples.plain(samples.outlook_reply("The app crashes on start.")).as_bytes())
    assert rec.text == "The app crashes on start."
    assert "Sent: Monday" in (rec.original_text or "")


def test_original_message_separator_and_german_header() -> None:
    body = ("Die Lieferung kam zu spät.\n\nAm 03.03.2026 um 10:12 schrieb Support <support@shop.example>:\n"
            "> Hallo\n")
    assert record_of(samples.plain(body).as_bytes()).text == "Die Lieferung kam zu spät."
    body = "Please call me back.\n\n-----Original Message-----\nFrom: Support\nSent: today\n\nold text"
    assert record_of(samples.plain(body).as_bytes()).text == "Please call me back."


def test_inline_quoted_lines_are_dropped() -> None:
    body = "> Did the parcel arrive?\nNo, it never arrived.\n> Anything else?\nThe box was damaged too."
    assert record_of(samples.plain(body).as_bytes()).text == "No, it never arrived.\nThe box was damaged too."


def test_signature_is_removed() -> None:
    rec = record_of(samples.plain("Fast delivery, great job!\n\n-- \nJane Doe\nACME Corp | +1 555 0100").as_bytes())
    assert rec.text == "Fast delivery, great job!"


def test_attachments_are_counted_not_stored() -> None:
    rec = record_of(samples.with_attachment("See the attached invoice, it is wrong.").as_bytes())
    assert rec.attributes["attachments"] == 2
    assert rec.text == "See the attached invoice, it is wrong."
    assert "PDF" not in rec.model_dump_json() and "invoice.pdf" not in rec.model_dump_json()


def test_forwarded_message_counts_as_one_attachment() -> None:
    inner = samples.plain("inner message")
    msg = samples.plain("Look at what your system sent me.")
    msg.add_attachment(inner)
    assert record_of(msg.as_bytes()).attributes["attachments"] == 1


@pytest.mark.parametrize(("msg", "reason"), [
    (samples.auto_reply(), "auto_reply"),
    (samples.plain("away", headers={"X-Autoreply": "yes"}), "auto_reply"),
    (samples.bounce(), "bounce"),
    (samples.plain("undeliverable", sender="MAILER-DAEMON@mx.example"), "bounce"),
    (samples.plain("newsletter", headers={"Precedence": "bulk"}), "bulk"),
    (samples.plain("list mail", headers={"List-Id": "<news.shop.example>"}), "bulk"),
])
def test_not_feedback_is_skipped_with_reason(msg: object, reason: str) -> None:
    out = parse(msg.as_bytes())  # type: ignore[attr-defined]
    assert out.kind == "skipped" and out.reason == reason and out.detail
    assert out.record is None


def test_mailing_list_rule_can_be_turned_off() -> None:
    raw = samples.plain("via a Google Group", headers={"List-Id": "<support.shop.example>"}).as_bytes()
    opts = ParseOptions(customer_key=KEY, skip_mailing_lists=False)
    assert parse_message(raw, opts).kind == "record"


def test_auto_submitted_no_is_feedback() -> None:
    assert parse(samples.plain("real", headers={"Auto-Submitted": "no"}).as_bytes()).kind == "record"


def test_missing_message_id_uses_a_stable_hash() -> None:
    raw = samples.plain("No id here.", msgid=None).as_bytes()
    first, second = record_of(raw), record_of(raw)
    assert first.source_ref == raw_ref(raw) and first.source_ref.startswith("sha256:")
    assert first.feedback_id == second.feedback_id


def test_mbox_from_line_is_ignored() -> None:
    raw = samples.plain("From an archive.", msgid="<mb@x>").as_bytes()
    rec = record_of(b"From jane@customer.example Tue Mar  3 10:00:00 2026\n" + raw)
    assert rec.source_ref == "mb@x" and rec.text == "From an archive."


def test_thread_ref_from_references_then_in_reply_to() -> None:
    msg = samples.plain("reply", headers={"In-Reply-To": "<parent@x>", "References": "<root@x> <parent@x>"})
    assert record_of(msg.as_bytes()).thread_ref == "msg:" + hashlib.sha256(b"root@x").hexdigest()[:32]
    msg = samples.plain("reply", headers={"In-Reply-To": "<parent@x>"})
    assert record_of(msg.as_bytes()).thread_ref == "msg:" + hashlib.sha256(b"parent@x").hexdigest()[:32]


def test_date_falls_back_to_internaldate() -> None:
    msg = samples.plain("undated")
    del msg["Date"]
    assert record_of(msg.as_bytes(), internaldate=WHEN).event_time == WHEN
    msg["Date"] = "Thu, 01 Jan 1970 00:00:00 +0000"  # a broken client clock
    assert record_of(msg.as_bytes(), internaldate=WHEN).event_time == WHEN


@pytest.mark.parametrize(("raw", "reason"), [
    (bytes(range(256)) * 4, "not_an_email"),
    (b"From: a@customer.example\r\nMessage-ID: <cut@x>\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
     b"this message was cut off before its first boun", "malformed_mime"),
    (b"From: a@customer.example\r\nMessage-ID: <img@x>\r\nContent-Type: image/png\r\n"
     b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n", "no_text"),
    (b"", "not_an_email"),
])
def test_garbled_and_truncated_messages_are_dead_letters(raw: bytes, reason: str) -> None:
    out = parse(raw)
    assert out.kind == "dead_letter" and out.reason == reason and out.detail
    assert out.feedback_id == derive_feedback_id("email", out.source_ref)


def test_ten_megabyte_message_is_bounded_and_flagged() -> None:
    line = "The service got worse every month and nobody listens. " * 20 + "\n"
    text = "Summary: very unhappy.\n" + line * (10 * 1024 * 1024 // len(line))
    raw = samples.plain(text, cte="base64").as_bytes()
    assert len(raw) > 10 * 1024 * 1024
    rec = record_of(raw)
    assert rec.attributes["truncated"] is True
    assert len(rec.text) <= MAX_TEXT_CHARS and rec.text.startswith("Summary: very unhappy.")
    assert len(rec.model_dump_json().encode()) < 1024 * 1024  # fits one Kafka message


def test_partial_fetch_is_flagged() -> None:
    raw = samples.with_attachment("Start of a huge message.", size=50_000).as_bytes()[:30_000]
    rec = record_of(raw, partial=True)
    assert rec.text == "Start of a huge message." and rec.attributes["truncated"] is True


def test_format_flowed_is_joined() -> None:
    raw = (b"From: a@customer.example\r\nMessage-ID: <ff@x>\r\n"
           b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
           b"This line was wrapped \r\nby the mail client.\r\nNew paragraph.\r\n")
    assert record_of(raw).text == "This line was wrapped by the mail client.\nNew paragraph."


def test_caller_attributes_are_kept() -> None:
    raw = samples.plain("hello").as_bytes()
    rec = record_of(raw, attributes={"imap_folder": "INBOX", "imap_uid": 7})
    assert rec.attributes["imap_folder"] == "INBOX" and rec.attributes["imap_uid"] == 7


def test_encoded_subject_is_decoded() -> None:
    raw = (b"From: a@customer.example\r\nMessage-ID: <s@x>\r\nSubject: =?utf-8?b?"
           + base64.b64encode("Lieferung verspätet".encode()) + b"?=\r\n\r\nbody text\r\n")
    assert record_of(raw).subject == "Lieferung verspätet"
