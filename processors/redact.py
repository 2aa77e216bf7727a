"""PII redaction: e-mail addresses, phone numbers, payment card numbers, IBANs and IP addresses.

Each is replaced by a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[IP]``)
and counted. Phone numbers are found by Google's libphonenumber (the ``phonenumbers`` package) in
international format anywhere, and in national format for the configured regions; card numbers
must pass the Luhn check and IBANs their country length and mod-97 check (``python-stdnum``); IPs
must parse as IPv4/IPv6 addresses. Addresses inside URLs (``?email=a%40b.com``,
``http://10.0.0.7/admin``) are redacted too.

Guarantees: the output holds none of the values found; text without digits, ``@``, ``%`` or ``:``
is returned unchanged at the cost of one regex scan, and each pattern runs only on text that holds
what every one of its matches needs; a placeholder is never matched again.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

#: Regions whose national formats ("(415) 555-2671", "020 7946 0958") are recognised; numbers with a
#: "+" or "00" country prefix are recognised whatever the region (FEEDBACK_PHONE_REGIONS).
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR")
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]", "ip": "[IP]"}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._+-]{0,63}(?:@|%40)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_CARD = re.compile(r"(?<![\w+-])\d(?:[ -]?\d){12,18}(?![\w-])")  # never after "+": that is a phone number
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])"
)
_PHONE = re.compile(r"(?<![\w+])(?:\+|\(\+?)?\d(?:[ ().\-/]{0,3}\d){6,16}(?![\w])")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_HINT = re.compile(r"[@%:]|\d")
_DIGIT = re.compile(r"\d")
_SEVEN_DIGITS = re.compile(r"\d(?:\D*\d){6}")  # a phone number (_PHONE) has at least 7 digits
_CLEAN_MAX = 4096  # remembered clean field values (emptied when full)
_CLEAN_MAX_CHARS = 200
_IDENTIFIER_KEY = re.compile(r"(?:^|_)(?i:id|ids|ref)$|[a-z](?:Id|Ids|Ref)$")


@dataclass
class Redaction:
    """A redacted text and how many placeholders of each kind it received."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def redacted(self) -> bool:
        return bool(self.counts)


class Redactor:
    """Finds and replaces PII (see the module docstring); thread-safe. The only state it keeps is a
    bounded set of product, channel and tag values in which it found nothing (never a value that
    held PII), so the few that recur on every record are not searched again."""

    def __init__(self, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
        unknown = [r for r in regions if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            from pipeline.errors import ConfigError

            raise ConfigError(f"FEEDBACK_PHONE_REGIONS: unknown region(s) {', '.join(unknown)}")
        self.regions = tuple(r.upper() for r in regions)
        self._clean: set[str] = set()  # product, channel and tag values found to hold no PII (_label)

    def redact(self, text: str) -> Redaction:
        counts: dict[str, int] = {}
        if not _HINT.search(text):
            return Redaction(text, counts)
        # Each pattern runs only when the text holds what every match of it needs: "@" or "%40"
        # (e-mail), a digit (IBAN, card, IPv4), 7 digits (phone), two ":" (IPv6).
        if "@" in text or "%40" in text:
            text = self._sub(_EMAIL, text, "email", counts)
        if _DIGIT.search(text):
            text = self._sub(_IBAN, text, "iban", counts, _valid_iban)
            text = self._sub(_CARD, text, "card", counts, _valid_card)
            text = self._sub(_IPV4, text, "ip", counts, _valid_ip)
            if _SEVEN_DIGITS.search(text):
                text = self._phones(text, counts)
        if text.count(":") >= 2:
            text = self._sub(_IPV6, text, "ip", counts, _valid_ipv6)
        return Redaction(text, counts)

    def redact_many(self, values: Mapping[str, object]) -> tuple[dict[str, object], dict[str, int]]:
        """Redact the string values of a mapping (attributes); returns it and the counts.

        Identifiers of the source system (keys ending in ``id``/``_ref``) go through
        :meth:`redact_identifier`: the parts made only of digits (a Zendesk ``group_id`` of 12 digits looks
        like a phone number but names a group) are kept, anything else is redacted like text.
        """
        out: dict[str, object] = {}
        counts: dict[str, int] = {}
        for key, value in values.items():
            if isinstance(value, str):
                value = (self.redact_identifier if _IDENTIFIER_KEY.search(key) else self._text)(value, counts)
            out[key] = value
        return out, counts

    def redact_identifier(self, value: str, counts: dict[str, int]) -> str:
        """An identifier (``zendesk:ticket:360001234567``, a group id): its ``:``-separated parts made
        only of digits are kept (ids, not phone numbers), the other parts are redacted like text."""
        return ":".join(part if part.isdigit() else self._text(part, counts) for part in value.split(":"))

    def redact_fields(self, data: dict[str, Any], counts: dict[str, int]) -> None:
        """Redact a record's structured fields in ``data`` (a record's fields, changed in place) and
        add what was found to ``counts``: ``product``, ``channel`` and ``tags`` like text, ``thread_ref`` as
        an identifier (:meth:`redact_identifier`); attributes are :meth:`redact_many`'s. Every source
        passes here (the processor's enrichment), so no connector has to get it right."""
        clean = self._clean
        for name in ("product", "channel"):
            value = data.get(name)
            if isinstance(value, str) and value not in clean:
                data[name] = self._label(value, counts)
        if isinstance(data.get("thread_ref"), str):
            data["thread_ref"] = self.redact_identifier(data["thread_ref"], counts)
        if data.get("tags"):
            data["tags"] = [t if t in clean else self._label(t, counts) for t in data["tags"]]

    def _label(self, value: str, counts: dict[str, int]) -> str:
        """:meth:`_text` of a product, channel or tag; remembers values in which nothing was found
        (few distinct ones recur on every record), never one that held PII."""
        r = self.redact(value)
        if r.counts:
            for kind, n in r.counts.items():
                counts[kind] = counts.get(kind, 0) + n
        elif len(value) <= _CLEAN_MAX_CHARS:
            if len(self._clean) >= _CLEAN_MAX:
                self._clean.clear()
            self._clean.add(value)
        return r.text

    def _text(self, value: str, counts: dict[str, int]) -> str:
        r = self.redact(value)
        for kind, n in r.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return r.text

    @staticmethod
    def _sub(pattern: re.Pattern[str], text: str, kind: str, counts: dict[str, int],
             valid: object = None) -> str:
        def repl(m: re.Match[str]) -> str:
            if valid is not None and not valid(m.group(0)):  # type: ignore[operator]
                return m.group(0)
            counts[kind] = counts.get(kind, 0) + 1
            return PLACEHOLDERS[kind]

        return pattern.sub(repl, text)

    def _phones(self, text: str, counts: dict[str, int]) -> str:
        # Each run of 7+ digits (not a date) is parsed by libphonenumber: with its "+"/"00" country
        # prefix when it has one, else in each configured region's national format; a run that is
        # a valid number in one of them is a phone number.
        def repl(m: re.Match[str]) -> str:
            candidate = m.group(0)
            if _DATE.fullmatch(candidate.strip()) or not self._is_phone(candidate):
                return candidate
            counts["phone"] = counts.get("phone", 0) + 1
            return PLACEHOLDERS["phone"]

        return _PHONE.sub(repl, text)

    def _is_phone(self, candidate: str) -> bool:
        international = candidate.startswith(("+", "00"))
        if international:
            candidate = "+" + candidate.lstrip("+")[2 if candidate.startswith("00") else 0:]
        for region in ((None,) if international else self.regions):
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _valid_card(value: str) -> bool:
    digits = _digits(value)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits) and len(set(digits)) > 1


def _valid_iban(value: str) -> bool:
    return bool(stdnum_iban.is_valid(value.replace(" ", "").upper()))


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _valid_ipv6(value: str) -> bool:
    if value.count(":") < 2 or not any(c.isalpha() or c == ":" for c in value.replace(":", "", 1)):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True
