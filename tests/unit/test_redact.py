"""PII redaction: e-mail, phone (international formats), Luhn-checked cards, IBANs, IPs, inside URLs."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from processors.redact import Redactor


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(("US", "GB", "DE", "FR"))


@pytest.mark.parametrize("text, expected, counts", [
    ("Mail me at john.doe+shop@example.co.uk, thanks", "Mail me at [EMAIL], thanks", {"email": 1}),
    ("unsubscribe: https://shop.example.com/u?email=jane%40example.org&x=1",
     "unsubscribe: https://shop.example.com/u?email=[EMAIL]&x=1", {"email": 1}),
    ("mailto:help@example.com", "mailto:[EMAIL]", {"email": 1}),
    ("admin page http://192.168.1.20:8080/admin is open", "admin page http://[IP]:8080/admin is open", {"ip": 1}),
    ("from 2001:db8::8a2e:370:7334 and 8.8.8.8", "from [IP] and [IP]", {"ip": 2}),
    ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged", {"card": 1}),
    ("card 5500-0000-0000-0004.", "card [CARD].", {"card": 1}),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN] please", {"iban": 1}),
    ("pay to GB82WEST12345698765432", "pay to [IBAN]", {"iban": 1}),
    # at the edges of the cheap pre-checks: two ":" (IPv6), exactly 7 digits (phone), digits only in an e-mail
    ("link-local fe80::1 is down", "link-local [IP] is down", {"ip": 1}),
    ("ref 12:30 and 555-2671", "ref 12:30 and [PHONE]", {"phone": 1}),
    ("a1234567@example.com and (415) 555-2671", "[EMAIL] and [PHONE]", {"email": 1, "phone": 1}),
])
def test_redacts(redactor: Redactor, text: str, expected: str, counts: dict[str, int]) -> None:
    r = redactor.redact(text)
    assert (r.text, r.counts, r.redacted) == (expected, counts, True)


@pytest.mark.parametrize("number", [
    "+44 20 7946 0958",        # UK, international
    "+49 30 901820",           # Germany
    "+33 1 42 68 53 00",       # France
    "+91 98765 43210",         # India (not a configured region: the + prefix is enough)
    "+1 (415) 555-2671",       # US with country code
    "0044 20 7946 0958",       # 00 international prefix
    "(415) 555-2671",          # US national
    "020 7946 0958",           # UK national
    "0151 23456789",           # German mobile, national
])
def test_phone_formats(redactor: Redactor, number: str) -> None:
    r = redactor.redact(f"call me on {number} today")
    assert r.text == "call me on [PHONE] today" and r.counts == {"phone": 1}


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 fails the Luhn check",
    "order 2024-01-15, delivered 15.01.2024",
    "IBAN DE89370400440532013001 has a bad check digit",
    "server 999.10.0.1 is not an address, nor is 10:30:00",
    "order number 12345, 3.5 stars, costs 12,99 EUR",
    "Nothing personal here at all.",
    "0000 0000 0000 0000 is all zeros",
])
def test_leaves_non_pii_alone(redactor: Redactor, text: str) -> None:
    r = redactor.redact(text)
    assert r.text == text and not r.redacted


def test_placeholders_are_stable(redactor: Redactor) -> None:
    once = redactor.redact("a@b.example.com and +44 20 7946 0958").text
    assert redactor.redact(once).text == once and not redactor.redact(once).redacted


def test_attributes(redactor: Redactor) -> None:
    values, counts = redactor.redact_many({"email": "x@example.com", "n": 3, "note": "ok", "ok": True})
    assert values == {"email": "[EMAIL]", "n": 3, "note": "ok", "ok": True} and counts == {"email": 1}


def test_regions_are_checked() -> None:
    assert Redactor(("de",)).regions == ("DE",)
    with pytest.raises(ConfigError, match="FEEDBACK_PHONE_REGIONS"):
        Redactor(("XX",))
    # without GB, a UK national number is not recognised, an international one still is
    us = Redactor(("US",))
    assert us.redact("020 7946 0958").text == "020 7946 0958"
    assert us.redact("+44 20 7946 0958").text == "[PHONE]"


def test_source_system_identifiers_made_of_digits_are_kept(redactor: Redactor) -> None:
    attrs, counts = redactor.redact_many({"group_id": "360001234567", "ticket_id": "+4915112345678",
                                          "requester_phone": "+49 151 12345678", "status": "open",
                                          "customer_id": "ann@example.org",
                                          "ticket_ref": "zendesk:ticket:4915112345678"})
    assert attrs["group_id"] == "360001234567" and attrs["status"] == "open"
    assert attrs["ticket_ref"] == "zendesk:ticket:4915112345678"  # its parts made of digits are ids
    # an id-like key is no hiding place: a phone number or an address in it is redacted like text
    assert attrs["ticket_id"] == "[PHONE]" and attrs["requester_phone"] == "[PHONE]"
    assert attrs["customer_id"] == "[EMAIL]"
    assert counts == {"phone": 2, "email": 1}
    kept, _ = redactor.redact_many({"paid": "+49 151 12345678", "groupId": "360001234567"})
    assert kept["paid"] == "[PHONE]" and kept["groupId"] == "360001234567"


def test_structured_fields_are_redacted_like_text(redactor: Redactor) -> None:
    data: dict[str, object] = {
        "product": "kettle for ann@example.org", "channel": "+44 20 7946 0958", "tags": ["vip", "bob@example.com"],
        "thread_ref": "jira:SUP-12:call +44 20 7946 0958", "source_ref": "kept-as-is"}
    counts = {"email": 1}
    redactor.redact_fields(data, counts)
    assert data == {"product": "kettle for [EMAIL]", "channel": "[PHONE]", "tags": ["vip", "[EMAIL]"],
                    "thread_ref": "jira:SUP-12:call [PHONE]", "source_ref": "kept-as-is"}
    assert counts == {"email": 3, "phone": 2}
    ticket = {"thread_ref": "zendesk:ticket:360001234567", "product": None, "tags": []}
    redactor.redact_fields(ticket, counts)
    assert ticket["thread_ref"] == "zendesk:ticket:360001234567"  # a ticket key made of digits stays


def test_structured_fields_are_redacted_every_time_and_only_clean_values_are_remembered(
        redactor: Redactor) -> None:
    for _ in range(3):  # the same values again: a remembered clean value is kept, PII is found again
        data = {"product": "headphones", "channel": "call +44 20 7946 0958", "tags": ["vip", "jane@example.com"]}
        counts: dict[str, int] = {}
        redactor.redact_fields(data, counts)
        assert data == {"product": "headphones", "channel": "call [PHONE]", "tags": ["vip", "[EMAIL]"]}
        assert counts == {"phone": 1, "email": 1}
    assert redactor._clean == {"headphones", "vip"}
