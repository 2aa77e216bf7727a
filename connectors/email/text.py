"""Text out of mail bodies: charset decoding that never fails, HTML to readable text, and the
cutting of quoted replies and signatures (``mail-parser-reply`` finds the reply headers).
"""

from __future__ import annotations

import codecs
import re

from mailparser_reply.parser import EmailMessage as ReplyMessage
from selectolax.lexbor import LexborHTMLParser

#: Labels that browsers (WHATWG Encoding Standard) read as windows-1252; mailers mislabel it often.
_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819", "ibm819"}
_DROP = "script, style, head, title, noscript, template, object, iframe, svg"
_BLOCKS = ("p, div, br, li, tr, h1, h2, h3, h4, h5, h6, table, ul, ol, dl, dt, dd, blockquote, pre, hr, "
           "section, article, header, footer, address")
#: Quoted history in HTML mail: Gmail, Apple Mail, Outlook (desktop and web), Thunderbird, Yahoo.
_HTML_QUOTES = ("blockquote, div.gmail_quote, div.gmail_extra, #divRplyFwdMsg, #appendonsend, "
                "div.moz-cite-prefix, div.yahoo_quoted, #mail-editor-reference-message-container")
_BREAK = "\x1e"
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_QUOTED_LINE = re.compile(r"^[ \t]*>")
_SIGNATURE = re.compile(r"^-- ?$")
_MANY_BLANKS = re.compile(r"\n{3,}")
#: How much of a body the reply cutter reads: the new text is on top, and ``text`` is bounded anyway.
REPLY_SCAN_CHARS = 128 * 1024


def decode(payload: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode with the declared charset; unknown or wrong charsets fall back, never raise.

    Returns the text and whether bytes had to be replaced (U+FFFD).
    """
    name = (charset or "").strip().strip('"').lower()
    if name in _AS_CP1252:
        name = "cp1252"
    if name:
        try:
            codecs.lookup(name)
        except LookupError:
            name = ""
    if not name:  # undeclared or unknown: UTF-8 when it is valid, else windows-1252
        try:
            return payload.decode("utf-8"), False
        except UnicodeDecodeError:
            name = "cp1252"
    try:
        return payload.decode(name), False
    except UnicodeDecodeError:
        return payload.decode(name, errors="replace"), True
    except Exception:  # a codec that breaks on its own input
        return payload.decode("utf-8", errors="replace"), True


def html_to_text(html: str, drop_quotes: bool = False) -> str:
    """Readable text of an HTML body: block elements become line breaks; no script/style content."""
    tree = LexborHTMLParser(html)
    selectors = f"{_DROP}, {_HTML_QUOTES}" if drop_quotes else _DROP
    for node in tree.css(selectors):
        node.decompose()
    for node in tree.css(_BLOCKS):
        node.insert_after(_BREAK)
    root = tree.body or tree.root
    if root is None:
        return ""
    raw = root.text(deep=True, separator="")
    lines = (_SPACES.sub(" ", chunk).strip() for chunk in raw.split(_BREAK))
    return "\n".join(line for line in lines if line)  # nested blocks give no blank lines


def strip_reply(text: str, languages: tuple[str, ...] = ("en",)) -> str:
    """The newest part of a message: without quoted history, ``>`` lines and the signature.

    Quoted history starts at a reply header ("On ... wrote:", "Am ... schrieb", Outlook's
    "From: ... Sent: ..." block, "-----Original Message-----"); the signature at a "-- " line or a
    closing formula ("Best regards", "Sent from my ..."). Returns "" when nothing new is left.
    """
    head = text[:REPLY_SCAN_CHARS]
    head = _cut_signature(head)
    try:
        reply = ReplyMessage(text=head, languages=list(languages), keep_hyphen_lists=True).read()
        body = reply.replies[0].body if reply.replies else head
    except Exception:  # the cutter is a heuristic: never lose the text because of it
        body = head
    kept = [line for line in body.split("\n") if not _QUOTED_LINE.match(line)]
    return _MANY_BLANKS.sub("\n\n", "\n".join(kept)).strip()


def _cut_signature(text: str) -> str:
    """Everything from the first signature separator ("-- " alone on a line, RFC 3676) is dropped:
    in a top-posted reply the quoted history sits below the signature too."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line.rstrip("\r")):
            return "\n".join(lines[:i])
    return text


def unflow(text: str, delsp: bool = False) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        quoted = line.startswith(">")
        if line.startswith(" ") and not quoted:
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and not _SIGNATURE.match(line):
            buf += line[:-1] if delsp else line
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)
