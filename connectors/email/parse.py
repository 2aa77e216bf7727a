"""One raw e-mail -> one :class:`Outcome`: a FeedbackRecord, a skip (not feedback), or a dead letter.

Uses the standard ``email`` package with ``policy.default``. Never raises: whatever cannot be read
becomes a dead-letter outcome with a reason.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Literal

from pydantic import ValidationError

from connectors.email.text import decode, html_to_text, strip_reply, unflow
from pipeline.errors import RecordError
from pipeline.schema import MAX_ORIGINAL_CHARS, MAX_TEXT_CHARS, FeedbackRecord, customer_ref, derive_feedback_id

SOURCE = "email"
#: ``original_text`` is also bounded in UTF-8 bytes, so a record stays well inside 1 MB on Kafka.
ORIGINAL_MAX_BYTES = 256 * 1024


class _MemoHeaderRegistry(HeaderRegistry):
    """``policy.default``'s header registry, memoized: the stdlib builds a new header class on every
    lookup and re-parses Content-Type on every ``get_content_type()`` call (a dozen times per
    message); header objects are immutable, so parsing each distinct (name, value) once is safe."""

    def __init__(self, size: int = 4096) -> None:
        super().__init__()
        self._size = size
        self._classes: dict[str, Any] = {}
        self._parsed: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return super().__call__(name, value)
        key = (name.lower(), value)
        header = self._parsed.get(key)
        if header is None or header.name != name:
            if len(self._parsed) >= self._size:
                self._parsed.clear()
            header = self._parsed[key] = super().__call__(name, value)
        return header


#: ``policy.default`` (same header classes and behaviour), with the memoized registry.
POLICY = policy.default.clone(header_factory=_MemoHeaderRegistry())
_PARSER = BytesParser(policy=POLICY)
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_LANGUAGE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
_IDENTITY_HEADERS = ("from", "date", "message-id", "subject", "to", "received")
_STRUCTURAL_DEFECTS = {"StartBoundaryNotFoundDefect", "MissingHeaderBodySeparatorDefect",
                       "MultipartInvariantViolationDefect", "NoBoundaryInMultipartDefect"}
_BOUNCE_SENDERS = {"mailer-daemon", "postmaster"}


@dataclass(frozen=True)
class ParseOptions:
    """How messages become records: the customer-hash key and the limits."""

    customer_key: bytes
    max_text_bytes: int = 1024 * 1024
    skip_mailing_lists: bool = True
    reply_languages: tuple[str, ...] = ("en",)

    @classmethod
    def from_settings(cls, settings: Any) -> ParseOptions:
        return cls(customer_key=settings.customer_key(), max_text_bytes=settings.imap_max_text_bytes,
                   skip_mailing_lists=settings.imap_skip_mailing_lists,
                   reply_languages=tuple(settings.imap_reply_languages))


@dataclass
class Outcome:
    """What became of one message. ``feedback_id`` is set for every kind (for the DLQ key too)."""

    kind: Literal["record", "skipped", "dead_letter"]
    feedback_id: uuid.UUID
    source_ref: str
    record: FeedbackRecord | None = None
    reason: str = ""
    detail: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


def strip_from_line(raw: bytes) -> bytes:
    """Drop a leading mbox ``From `` separator line, as many tools save it in ``.eml`` files."""
    if raw.startswith(b"From "):
        end = raw.find(b"\n")
        return b"" if end < 0 else raw[end + 1:]
    return raw


def raw_ref(raw: bytes) -> str:
    """source_ref of a message without a usable Message-ID: a hash of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_message(raw: bytes, options: ParseOptions, *, internaldate: datetime | None = None,
                  channel: str | None = None, attributes: dict[str, Any] | None = None,
                  partial: bool = False) -> Outcome:
    """Parse one message; ``partial`` says only its beginning was fetched (flagged as truncated)."""
    body = strip_from_line(raw)
    source_ref = raw_ref(body)
    extra = dict(attributes or {})
    try:
        msg = _PARSER.parsebytes(body)
        source_ref = message_id(msg) or source_ref
        skip = classify(msg, options.skip_mailing_lists)
        if skip is not None:
            return Outcome("skipped", derive_feedback_id(SOURCE, source_ref), source_ref,
                           reason=skip[0], detail=skip[1], attributes=extra)
        record = _record(msg, len(body), source_ref, options, internaldate, channel, extra, partial)
        return Outcome("record", derive_feedback_id(SOURCE, source_ref), source_ref, record=record,
                       attributes=extra)
    except RecordError as exc:
        reason, detail = exc.reason, exc.detail
    except ValidationError as exc:
        reason, detail = "invalid_record", str(exc)[:2000]
    except Exception as exc:  # the stdlib parser and header classes have rare crashes on garbage
        reason, detail = "unparseable", f"{type(exc).__name__}: {exc}"[:2000]
    return Outcome("dead_letter", derive_feedback_id(SOURCE, source_ref), source_ref, reason=reason,
                   detail=detail, attributes=extra)


# -- headers -----------------------------------------------------------------------------------
def header(msg: MIMEPart, name: str, decoded: bool = False) -> str | None:
    """A header's unfolded value: raw (fast: enough for ids, addresses, flags) or RFC 2047-decoded.

    A header the policy cannot parse falls back to its raw text.
    """
    value: Any = None
    if decoded:
        try:
            value = msg.get(name)
        except Exception:
            value = None
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in msg.raw_items() if k.lower() == lowered), None)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def message_id(msg: EmailMessage) -> str | None:
    """The Message-ID without angle brackets, or None when missing or unusable."""
    value = header(msg, "Message-ID")
    if not value:
        return None
    match = _ANGLE_ID.search(value)
    ident = match.group(1) if match else value
    if not ident or len(ident) > 500 or any(ch.isspace() for ch in ident):
        return None
    if not ident.isascii():  # raw 8-bit bytes decode to surrogates; an id must be valid text
        ident = ident.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return ident


def addresses(msg: EmailMessage, name: str) -> list[str]:
    """Lower-cased addr-specs of an address header (tolerant of broken headers)."""
    value = header(msg, name)
    if not value:
        return []
    try:
        pairs = getaddresses([value])
    except Exception:
        return []
    return [addr.strip().lower() for _, addr in pairs if "@" in addr]


def thread_ref(msg: EmailMessage, own_ref: str) -> str:
    """The conversation: the first message of References, else In-Reply-To, else this message; as
    ``msg:`` and 32 hex digits of its SHA-256 (a Message-ID often ends in a sender's address or host,
    which the processor would redact, merging every thread into one)."""
    root = own_ref
    for name in ("References", "In-Reply-To"):
        value = header(msg, name)
        ids = _ANGLE_ID.findall(value) if value else []
        if ids and len(ids[0]) <= 500:
            root = str(ids[0])
            break
    return "msg:" + hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def mailbox_channel(configured: str | None) -> str | None:
    """The record's channel: the mailbox the connector reads (its configured account or ``--channel``),
    never a header of the message (a ``To:`` may name anyone); of an address only its local part
    (``support@shop.example`` -> ``support``), lower-cased."""
    if not configured:
        return None
    return configured.split("@", 1)[0].strip().lower() if "@" in configured else configured.strip()


def classify(msg: EmailMessage, skip_lists: bool = True) -> tuple[str, str] | None:
    """(reason, detail) when the message is not feedback: ``auto_reply``, ``bounce`` or ``bulk``."""
    ctype = (header(msg, "Content-Type") or "").lower()
    if ctype.startswith("multipart/report"):
        report = str(msg.get_param("report-type", "") or "").lower()
        if report == "disposition-notification":
            return "auto_reply", "multipart/report; report-type=disposition-notification (read receipt)"
        return "bounce", f"multipart/report; report-type={report or '?'}"
    sender = addresses(msg, "From")
    if sender and sender[0].split("@", 1)[0] in _BOUNCE_SENDERS:
        return "bounce", f"From: {sender[0].split('@', 1)[0]}@..."
    auto = (header(msg, "Auto-Submitted") or "").lower()
    if auto and not auto.startswith("no"):
        return "auto_reply", f"Auto-Submitted: {auto[:100]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        value = (header(msg, name) or "").lower()
        if value and value not in ("no", "false", "0"):
            return "auto_reply", f"{name}: {value[:100]}"
    precedence = (header(msg, "Precedence") or "").lower()
    if precedence == "auto_reply":
        return "auto_reply", "Precedence: auto_reply"
    if precedence in ("bulk", "junk") or (skip_lists and precedence == "list"):
        return "bulk", f"Precedence: {precedence}"
    if skip_lists:
        for name in ("List-Id", "List-Unsubscribe"):
            if header(msg, name):
                return "bulk", f"{name} header (mailing list)"
    return None


def event_time(msg: EmailMessage, internaldate: datetime | None) -> datetime:
    """The Date header when it is plausible, else the server's INTERNALDATE, else now."""
    now = datetime.now(UTC)
    when: datetime | None = None
    raw = header(msg, "Date")
    try:
        when = parsedate_to_datetime(raw) if raw else None
    except Exception:
        when = None
    for candidate in (when, internaldate):
        if candidate is None:
            continue
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=UTC)
        if datetime(1990, 1, 1, tzinfo=UTC) <= candidate <= now + timedelta(days=1):
            return candidate.astimezone(UTC)
    return now


# -- body --------------------------------------------------------------------------------------
@dataclass
class Body:
    content_type: str
    full: str
    newest: str
    truncated: bool
    replaced: bool


def _part_bytes(part: MIMEPart, limit: int) -> tuple[bytes, bool]:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return b"", False
    return payload[:limit], len(payload) > limit


def _charset(part: MIMEPart) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def body(msg: EmailMessage, options: ParseOptions) -> tuple[Body | None, list[MIMEPart]]:
    """The readable body (text/plain preferred, else text/html), and the parts tried as bodies."""
    tried: list[MIMEPart] = []
    first = msg.get_body(preferencelist=("plain", "html"))
    for kind in ("plain", "html"):
        part = first if first is not None and _ctype(first) == f"text/{kind}" else None
        if part is None and (kind == "html" and tried):
            part = msg.get_body(preferencelist=("html",))  # the plain alternative was empty
        if part is None or any(part is t for t in tried):
            continue
        tried.append(part)
        payload, truncated = _part_bytes(part, options.max_text_bytes)
        text, replaced = decode(payload, _charset(part))
        if truncated:
            text = text.rstrip("\ufffd")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if kind == "plain":
            params = (header(part, "Content-Type") or "").lower()
            if "flowed" in params and str(part.get_param("format", "") or "").lower() == "flowed":
                text = unflow(text, str(part.get_param("delsp", "") or "").lower() == "yes")
            full, newest_source = text, text
        else:
            full, newest_source = html_to_text(text), html_to_text(text, drop_quotes=True)
        if full.strip():
            newest = strip_reply(newest_source, options.reply_languages) or strip_reply(full, options.reply_languages)
            return Body(f"text/{kind}", full.strip(), newest, truncated, replaced), tried
    return None, tried


def _ctype(part: MIMEPart) -> str:
    """The part's content type from the raw header (the policy re-parses it on every call)."""
    raw = header(part, "Content-Type")
    if not raw:
        return part.get_default_type()
    return raw.split(";", 1)[0].strip().lower()


def count_attachments(part: MIMEPart, bodies: list[MIMEPart]) -> int:
    """Attachments (and inline files), counted, never stored; a forwarded message counts as one."""
    ctype = _ctype(part)
    if ctype.startswith("multipart/"):
        children = part.get_payload()
        if not isinstance(children, list):
            return 0
        return sum(count_attachments(p, bodies) for p in children if isinstance(p, MIMEPart))
    if any(part is b for b in bodies):
        return 0
    disposition = (header(part, "Content-Disposition") or "").lower()
    named = "name=" in disposition or "name=" in (header(part, "Content-Type") or "").lower()
    is_text_body = ctype in ("text/plain", "text/html") and not disposition.startswith("attachment")
    return 0 if is_text_body and not named else 1


def _bounded(text: str, max_chars: int, max_bytes: int | None = None) -> tuple[str, bool]:
    cut = len(text) > max_chars
    text = text[:max_chars]
    if max_bytes is not None and len(text) > max_bytes // 4:
        data = text.encode("utf-8")
        if len(data) > max_bytes:
            text = data[:max_bytes].decode("utf-8", errors="ignore")
            cut = True
    return text, cut


def _record(msg: EmailMessage, size: int, source_ref: str, options: ParseOptions,
            internaldate: datetime | None, channel: str | None, extra: dict[str, Any],
            partial: bool) -> FeedbackRecord:
    keys = {k.lower() for k in msg}
    if not keys & set(_IDENTITY_HEADERS):
        defects = sorted({type(d).__name__ for d in msg.defects})
        raise RecordError("not_an_email", f"no From/Date/Message-ID/Subject/To header; defects: {defects}")
    found, tried = body(msg, options)
    if found is None:
        found_defects = {type(d).__name__ for d in msg.defects}
        for part in msg.walk():
            found_defects |= {type(d).__name__ for d in part.defects}
        if found_defects & _STRUCTURAL_DEFECTS:
            raise RecordError("malformed_mime", f"no readable text part; defects: {sorted(found_defects)}")
        raise RecordError("no_text", f"no non-empty text/plain or text/html body ({msg.get_content_type()})")
    text, text_cut = _bounded(found.newest or found.full, MAX_TEXT_CHARS)
    attributes: dict[str, Any] = {
        "content_type": found.content_type,
        "attachments": count_attachments(msg, tried),
        "message_bytes": size,
        "truncated": bool(found.truncated or text_cut or partial),
        "reply_cut": found.newest != found.full,
        "decode_errors": found.replaced,
    }
    original: str | None = None
    if found.newest != found.full:
        original, original_cut = _bounded(found.full, MAX_ORIGINAL_CHARS, ORIGINAL_MAX_BYTES)
        attributes["original_truncated"] = bool(original_cut or found.truncated or partial)
    for key, value in extra.items():
        attributes[key] = value[:1000] if isinstance(value, str) else value
    sender = addresses(msg, "From")
    subject = header(msg, "Subject", decoded=True)
    language = (header(msg, "Content-Language") or "").split(",")[0].strip()
    return FeedbackRecord(
        source=SOURCE,
        source_ref=source_ref,
        channel=mailbox_channel(channel),
        thread_ref=thread_ref(msg, source_ref),
        customer_ref=customer_ref(sender[0], options.customer_key) if sender else None,
        subject=subject[:1000] if subject else None,
        text=text,
        original_text=original,
        language=language if _LANGUAGE.match(language) else None,
        attributes=attributes,
        event_time=event_time(msg, internaldate),
    )
