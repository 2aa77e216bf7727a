"""Realistic e-mail messages for the tests and the benchmark (built with the stdlib, no fixtures).

``corpus(n)`` mixes what a support mailbox receives: plain and HTML replies with quoted history and
signatures, legacy charsets, attachments, and the auto-replies and bounces that are not feedback.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

COMPLAINTS = [
    "My parcel arrived two weeks late and the box was damaged.",
    "I was charged twice for the same order, please refund the second payment.",
    "The app crashes every time I open the settings page on Android.",
    "Your support agent was very helpful and solved my problem in minutes, thank you!",
    "The checkout keeps rejecting my card although it works everywhere else.",
    "Great product, but the manual is confusing and the setup took an hour.",
    "Nobody answered my last three e-mails. This is really frustrating.",
    "Die Lieferung kam viel zu spät und der Kundendienst war nicht erreichbar.",
]
QUOTE = "Hello,\nthank you for contacting us. We have forwarded your request to the team.\nBest regards\nSupport"


def _base(subject: str, sender: str, to: str, when: datetime, msgid: str | bool | None = True) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    if msgid is True:
        msg["Message-ID"] = make_msgid(domain="customer.example")
    elif msgid:
        msg["Message-ID"] = msgid
    return msg


def plain(text: str, *, subject: str = "Feedback", sender: str = "Jane Doe <jane@customer.example>",
          to: str = "support@shop.example", when: datetime | None = None, msgid: str | bool | None = True,
          charset: str = "utf-8", cte: str | None = None, headers: dict[str, str] | None = None) -> EmailMessage:
    msg = _base(subject, sender, to, when or datetime.now(UTC), msgid)
    msg.set_content(text, charset=charset, cte=cte)
    for key, value in (headers or {}).items():
        msg[key] = value
    return msg


def html_page(text: str) -> str:
    paras = "".join(f"<p>{line}</p>" for line in text.split("\n") if line)
    return (f"<html><head><style>p {{ color: #333 }}</style><script>track('open')</script></head>"
            f"<body>{paras}<div class=\"gmail_quote\">On Mon, 2 Mar 2026 at 09:00, Support "
            f"&lt;support@shop.example&gt; wrote:<blockquote>{QUOTE.replace(chr(10), '<br>')}</blockquote></div>"
            f"</body></html>")


def html_only(text: str, **kw: Any) -> EmailMessage:
    msg = plain("x", **kw)
    msg.set_content(html_page(text), subtype="html")
    return msg


def alternative(text: str, **kw: Any) -> EmailMessage:
    msg = plain(reply_body(text), **kw)
    msg.add_alternative(html_page(text), subtype="html")
    return msg


def reply_body(text: str) -> str:
    quoted = "\n".join(f"> {line}" for line in QUOTE.split("\n"))
    header = "On Mon, 2 Mar 2026 at 09:00, Support <support@shop.example> wrote:"
    return f"{text}\n\n-- \nJane Doe\n+1 555 0100\n\n{header}\n{quoted}\n"


def outlook_reply(text: str) -> str:
    return (f"{text}\n\n________________________________\nFrom: Support <support@shop.example>\n"
            f"Sent: Monday, March 2, 2026 9:00 AM\nTo: Jane Doe <jane@customer.example>\n"
            f"Subject: RE: Feedback\n\n{QUOTE}\n")


def with_attachment(text: str, size: int = 40_000, **kw: Any) -> EmailMessage:
    msg = plain(text, **kw)
    msg.add_attachment(random.Random(size).randbytes(size),
                       maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, maintype="image", subtype="png",
                       filename="screenshot.png")
    return msg


def auto_reply(**kw: Any) -> EmailMessage:
    return plain("I am out of the office until Monday.", subject="Automatic reply: Feedback",
                 headers={"Auto-Submitted": "auto-replied"}, **kw)


def bounce(**kw: Any) -> EmailMessage:
    kw["sender"] = "Mail Delivery Subsystem <mailer-daemon@shop.example>"
    msg = plain("Delivery to the following recipient failed permanently.", subject="Delivery Status Notification",
                **kw)
    msg.make_mixed()
    msg.replace_header("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')
    return msg


def wire(msg: EmailMessage) -> bytes:
    """The message as it travels over SMTP/IMAP: CRLF line ends."""
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def corpus(n: int, seed: int = 7, domain: str = "customer.example") -> list[bytes]:
    """``n`` messages as bytes: mostly feedback in the shapes mail clients produce, some skips."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        text = rng.choice(COMPLAINTS) + f" (case {i})"
        kw: dict[str, Any] = {"when": start + timedelta(minutes=i), "msgid": f"<m{i}.{seed}@{domain}>",
              "sender": f"Customer {i % 97} <c{i % 97}@{domain}>"}
        kind = rng.random()
        if kind < 0.35:
            msg = alternative(text, **kw)
        elif kind < 0.55:
            msg = plain(reply_body(text), **kw)
        elif kind < 0.70:
            msg = html_only(text, **kw)
        elif kind < 0.80:
            msg = plain(outlook_reply(text), charset="iso-8859-1", cte="quoted-printable", **kw)
        elif kind < 0.90:
            msg = with_attachment(text, size=rng.randint(5_000, 60_000), **kw)
        elif kind < 0.95:
            msg = plain(text, cte="base64", **kw)
        elif kind < 0.975:
            msg = auto_reply(**kw)
        else:
            msg = bounce(**kw)
        out.append(wire(msg))
    return out
