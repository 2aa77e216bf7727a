"""Acknowledge or resolve an incident from a notification: signed links and the small server behind them.

A link is ``{FEEDBACK_ALERT_ACTION_URL}/actions/{ack|resolve}/{incident_id}?exp=UNIX&sig=HEX`` where
``sig`` is the HMAC-SHA256, keyed by ``FEEDBACK_ALERT_ACTION_SECRET``, of ``action|incident_id|exp``.
Slack shows them as buttons (a button with a URL needs no Slack app); e-mail shows them as links.

Opening a link (GET) only shows a confirmation page with a form, so a link preview or a mail
scanner that fetches it changes nothing; submitting it (POST) checks the signature (constant time)
and the expiry, then records the action as the operator would with ``feedback alerts ack|resolve``:
a row in ``incident_history`` that the channels hear about. Refusals are JSON with a 4xx: 403 a bad
signature, 410 an expired link, 404 an unknown incident or path, 409 an incident already resolved.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine

from pipeline.logging import get_logger
from sinks.alerts import incidents

log = get_logger(__name__)

ACTIONS = {"ack": "acknowledged", "resolve": "resolved"}


def signature(secret: bytes, action: str, incident_id: uuid.UUID | str, expires: int) -> str:
    return hmac.new(secret, f"{action}|{incident_id}|{expires}".encode(), hashlib.sha256).hexdigest()


def link(base_url: str, secret: bytes, action: str, incident_id: uuid.UUID, ttl_seconds: float,
         now: float | None = None) -> str:
    """A signed link that performs ``action`` (ack|resolve) on the incident until it expires."""
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    sig = signature(secret, action, incident_id, expires)
    return f"{base_url.rstrip('/')}/actions/{action}/{incident_id}?exp={expires}&sig={sig}"


class _Refused(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def check(secret: bytes, path: str, query: str, now: float | None = None) -> tuple[str, uuid.UUID]:
    """(action, incident id) of a valid signed link; raises :class:`_Refused` otherwise."""
    parts = [p for p in path.split("/") if p]
    if len(parts) != 3 or parts[0] != "actions" or parts[1] not in ACTIONS:
        raise _Refused(404, "not_found", "no such action")
    try:
        incident_id = uuid.UUID(parts[2])
        q = parse_qs(query)
        expires, sig = int(q["exp"][0]), q["sig"][0]
    except (ValueError, KeyError, IndexError):
        raise _Refused(403, "bad_signature", "the link is incomplete") from None
    if not hmac.compare_digest(sig, signature(secret, parts[1], incident_id, expires)):
        raise _Refused(403, "bad_signature", "the link's signature does not match")
    if expires < (now if now is not None else time.time()):
        raise _Refused(410, "expired", "the link has expired; use feedback alerts ack|resolve")
    return parts[1], incident_id


class ActionServer:
    """Serves the signed links on ``port`` in a daemon thread until :meth:`stop`."""

    def __init__(self, engine: Engine, secret: bytes, host: str = "0.0.0.0", port: int = 9104) -> None:
        self.engine, self.secret = engine, secret
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._page(self)

            def do_POST(self) -> None:
                server._act(self)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="alert-actions", daemon=True)

    def start(self) -> ActionServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: str, kind: str = "application/json") -> None:
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", f"{kind}; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Cache-Control", "no-store")
        h.end_headers()
        h.wfile.write(data)

    def _refuse(self, h: BaseHTTPRequestHandler, exc: _Refused) -> None:
        self._send(h, exc.status, json.dumps({"error": exc.error, "detail": exc.detail}))

    def _page(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        try:
            action, incident_id = check(self.secret, url.path, url.query)
        except _Refused as exc:
            return self._refuse(h, exc)
        with self.engine.connect() as conn:
            inc = incidents.get(conn, incident_id)
        if inc is None:
            return self._refuse(h, _Refused(404, "unknown_incident", f"no incident {incident_id}"))
        verb = "Acknowledge" if action == "ack" else "Resolve"
        self._send(h, 200, (
            f"<!doctype html><meta charset=utf-8><title>{verb} incident</title><h1>{verb} this incident?</h1>"
            f"<p>{html.escape(inc.summary)}</p><p>Status: {html.escape(inc.status)}</p>"
            f"<form method=post action='{html.escape(h.path, quote=True)}'>"
            "<label>Your name <input name=by required></label> <label>Note <input name=note></label> "
            f"<button>{verb}</button></form>"), "text/html")

    def _act(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        try:
            action, incident_id = check(self.secret, url.path, url.query)
        except _Refused as exc:
            return self._refuse(h, exc)
        length = min(int(h.headers.get("Content-Length") or 0), 10_000)
        form = parse_qs(h.rfile.read(length).decode("utf-8", "replace"))
        by = (form.get("by", [""])[0].strip() or "link")[:200]
        note = (form.get("note", [""])[0].strip() or None)
        try:
            with self.engine.begin() as conn:
                inc = incidents.operator_action(conn, incident_id, ACTIONS[action], by, note, datetime.now(UTC))
        except LookupError:
            return self._refuse(h, _Refused(404, "unknown_incident", f"no incident {incident_id}"))
        except ValueError as exc:
            return self._refuse(h, _Refused(409, "already_" + (exc.args[0].rsplit(" ", 1)[-1]), str(exc)))
        log.info("incident action by link", incident_id=str(incident_id), action=ACTIONS[action], by=by)
        self._send(h, 200, json.dumps({"incident_id": str(incident_id), "status": inc.status, "by": by}))
