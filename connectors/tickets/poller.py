"""``feedback connector zendesk``: Zendesk's cursor-based incremental ticket export, polled.

Per page of ``/api/v2/incremental/tickets/cursor.json``: each ticket becomes its ticket record (with
its current state) and its satisfaction rating; its comments (``/api/v2/tickets/{id}/comments.json``)
become one record per public end-user comment (internal notes and agent replies are skipped and
counted). A ticket that cannot be mapped goes to ``feedback.dlq`` with the reason.

Guarantees: the cursor checkpoint (a JSON state file, written atomically) advances only after the
broker acknowledged every record and dead letter of the page, so a crash at any point re-reads at
most one page, whose records carry the same deterministic ids (no duplicates, nothing lost).
``429`` waits for ``Retry-After``; 5xx and network errors back off exponentially; 401/403 (and other
4xx) raise :class:`~pipeline.errors.ConfigError` (exit code 2).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from connectors.tickets import zendesk
from connectors.tickets.model import Mapped, RecordFactory
from pipeline import metrics
from pipeline.config import ZendeskSettings
from pipeline.errors import ConfigError, RecordError, TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.schema import DeadLetter

log = get_logger(__name__)

CONNECTOR = "zendesk"
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SIDELOADS = "users,groups,metric_sets"


class Checkpoint:
    """The poller's durable state (``{"cursor": ...}``) in a JSON file: temp file, fsync, rename."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the checkpoint {self.path} is unreadable ({exc}); fix or remove it") from exc
        return data if isinstance(data, dict) else {}

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def base_url(settings: ZendeskSettings) -> str:
    if settings.zendesk_base_url:
        return settings.zendesk_base_url.rstrip("/")
    return f"https://{settings.zendesk_subdomain}.zendesk.com"


def checkpoint_path(settings: ZendeskSettings) -> Path:
    if settings.zendesk_checkpoint_file:
        return settings.zendesk_checkpoint_file
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(base_url(settings)).netloc)
    return settings.data_dir / "connectors" / f"zendesk-{host}.json"


def check_settings(settings: ZendeskSettings) -> None:
    missing = []
    if not settings.zendesk_subdomain and not settings.zendesk_base_url:
        missing.append("FEEDBACK_ZENDESK_SUBDOMAIN (or FEEDBACK_ZENDESK_BASE_URL)")
    if not settings.zendesk_email:
        missing.append("FEEDBACK_ZENDESK_EMAIL")
    if settings.zendesk_api_token is None or not settings.zendesk_api_token.get_secret_value():
        missing.append("FEEDBACK_ZENDESK_API_TOKEN")
    if missing:
        raise ConfigError("the Zendesk connector needs " + ", ".join(missing))


class ZendeskClient:
    """GETs against the Zendesk API with its rate limits and failures mapped to typed errors."""

    def __init__(self, settings: ZendeskSettings, wait: Callable[[float], bool]) -> None:
        check_settings(settings)
        assert settings.zendesk_api_token is not None
        self.settings = settings
        self.wait = wait  # sleeps; True when the poller was asked to stop meanwhile
        self.http = httpx.Client(
            base_url=base_url(settings),
            auth=(f"{settings.zendesk_email}/token", settings.zendesk_api_token.get_secret_value()),
            timeout=settings.zendesk_request_timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": "feedback-pipeline"},
        )

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, params: dict[str, Any] | None = None, missing_ok: bool = False) -> dict[str, Any]:
        """The JSON body of ``GET url``: retries 429 (Retry-After), 5xx and network errors forever
        with capped backoff (stopping raises TransientError); 401/403/other 4xx -> ConfigError
        (404 -> ``{}`` when ``missing_ok``: the item vanished meanwhile)."""
        delay = 0.5
        while True:
            try:
                resp = self.http.get(url, params=params)
            except httpx.TransportError as exc:
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "network_error").inc()
                log.warning("zendesk unreachable; retrying", error=str(exc), retry_in=delay)
                delay = self._pause(delay, None, exc)
                continue
            status = resp.status_code
            if status == 200:
                try:
                    body = resp.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "ok").inc()
                    return body
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "bad_body").inc()
                log.warning("zendesk answered a body that is not a JSON object; retrying", url=url)
                delay = self._pause(delay, None, None)
            elif status == 429:
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "rate_limited").inc()
                retry_after = _retry_after(resp.headers.get("retry-after"))
                log.info("zendesk rate limit; waiting", retry_after=retry_after)
                delay = self._pause(delay, retry_after, None)
            elif status >= 500:
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "server_error").inc()
                log.warning("zendesk server error; retrying", status=status, retry_in=delay)
                delay = self._pause(delay, _retry_after(resp.headers.get("retry-after")), None)
            else:
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, f"http_{status}").inc()
                if status == 404 and missing_ok:
                    return {}
                if status in (401, 403):
                    raise ConfigError(
                        f"Zendesk refused the credentials ({status}) at {base_url(self.settings)}: check "
                        "FEEDBACK_ZENDESK_EMAIL and FEEDBACK_ZENDESK_API_TOKEN (token access enabled, "
                        "an agent/admin allowed to export)")
                raise ConfigError(f"Zendesk answered {status} for {url}: {resp.text[:300]}")

    def _pause(self, delay: float, retry_after: float | None, exc: Exception | None) -> float:
        wait = retry_after if retry_after is not None else delay
        if self.wait(wait):
            raise TransientError("stopped while waiting for Zendesk", retry_after=wait) from exc
        return min(delay * 2, self.settings.zendesk_max_backoff_seconds)

    def comments(self, ticket_id: str) -> tuple[list[dict[str, Any]], dict[Any, str]]:
        """Every comment of a ticket (cursor pagination) and the roles of their authors."""
        comments: list[dict[str, Any]] = []
        roles: dict[Any, str] = {}
        url: str | None = f"/api/v2/tickets/{ticket_id}/comments.json"
        params: dict[str, Any] | None = {"include": "users", "page[size]": 100}
        while url:
            body = self.get(url, params, missing_ok=True)
            comments.extend(c for c in body.get("comments") or [] if isinstance(c, dict))
            roles.update({u.get("id"): str(u.get("role")) for u in body.get("users") or [] if isinstance(u, dict)})
            meta, links = body.get("meta") or {}, body.get("links") or {}
            url = links.get("next") if meta.get("has_more") else (body.get("next_page") or None)
            params = None
        return comments, roles


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class ZendeskPoller:
    """Exports changed tickets page by page; the checkpoint follows the broker's acks (see module doc)."""

    def __init__(self, settings: ZendeskSettings, publisher: Publisher | None = None) -> None:
        check_settings(settings)
        self.settings = settings
        self.customer_key = settings.customer_key()
        self._stop = threading.Event()
        self.client = ZendeskClient(settings, self._stop.wait)
        self.checkpoint = Checkpoint(checkpoint_path(settings))
        self._own_publisher = publisher is None
        self.publisher = publisher or Publisher(settings, client_id="feedback-zendesk")

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def close(self) -> None:
        self.client.close()
        if self._own_publisher:
            self.publisher.close()

    def run(self, once: bool = False) -> int:
        """Poll until stopped (or, with ``once``, until the end of the stream); returns pages done."""
        pages = 0
        state = self.checkpoint.load()
        log.info("zendesk poller started", url=base_url(self.settings), checkpoint=str(self.checkpoint.path),
                 resume=bool(state.get("cursor")))
        while not self._stop.is_set():
            cursor = state.get("cursor")
            params = {"cursor": cursor} if cursor else {"start_time": self.settings.zendesk_start_time}
            try:
                page = self.client.get(EXPORT_PATH, {**params, "include": SIDELOADS})
                self._deliver(page)
            except TransientError as exc:
                if self._stop.is_set():
                    break
                log.warning("page not delivered; retrying from the checkpoint", error=str(exc))
                self._stop.wait(self.settings.zendesk_poll_interval_seconds)
                continue
            state = {"cursor": page.get("after_cursor") or cursor, "updated_at": time.time()}
            self.checkpoint.save(state)
            metrics.TICKET_POLL_CHECKPOINT.labels(CONNECTOR).set(state["updated_at"])
            pages += 1
            if page.get("end_of_stream"):
                if once:
                    break
                self._stop.wait(self.settings.zendesk_poll_interval_seconds)
        return pages

    def _deliver(self, page: dict[str, Any]) -> None:
        """Map one export page and publish it (blocks until the broker acked all of it)."""
        factory = RecordFactory(self.customer_key)
        sideloads = {name: {i.get("ticket_id" if name == "metric_sets" else "id"): i
                            for i in page.get(name) or [] if isinstance(i, dict)}
                     for name in ("users", "groups", "metric_sets")}
        mapped, letters = Mapped(), []
        for raw in page.get("tickets") or []:
            try:
                if not isinstance(raw, dict):
                    raise RecordError("invalid_payload", "a ticket must be a JSON object")
                ticket, items = zendesk.map_export_ticket(raw, sideloads, factory)
                if raw.get("status") != "deleted":
                    comments, roles = self.client.comments(ticket.ticket_id)
                    items.extend(zendesk.map_comments(ticket, comments, roles, factory))
            except (RecordError, ValidationError) as exc:
                reason = exc.reason if isinstance(exc, RecordError) else "schema_violation"
                letters.append(DeadLetter.for_payload(json.dumps(raw, default=str), stage="zendesk", reason=reason,
                                                      detail=str(exc)[:2000], source="ticket"))
                continue
            mapped.extend(items)
        self._publish(mapped, letters)

    def _publish(self, mapped: Mapped, letters: list[DeadLetter]) -> None:
        delay = 0.5
        while True:
            try:
                if mapped.records:
                    self.publisher.publish(mapped.records)
                if letters:
                    self.publisher.dead_letter(letters)
                break
            except TransientError as exc:
                log.warning("broker did not acknowledge; retrying", error=str(exc), retry_in=delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 30)
        metrics.ACCEPTED.labels("zendesk_poll").inc(len(mapped.records))
        for record in mapped.records:
            metrics.TICKET_ITEMS.labels(CONNECTOR, "state" if record.is_ticket_state else "feedback").inc()
        for reason in mapped.skipped:
            metrics.TICKET_ITEMS.labels(CONNECTOR, f"skipped_{reason}").inc()
            metrics.REJECTED.labels("zendesk_poll", reason).inc()


def run(settings: ZendeskSettings, once: bool = False) -> None:
    """The CLI entry: signals stop the poller after the page in hand (its checkpoint saved)."""
    poller = ZendeskPoller(settings)
    signal.signal(signal.SIGTERM, poller.stop)
    signal.signal(signal.SIGINT, poller.stop)
    if settings.zendesk_metrics_port:
        metrics.serve(settings.zendesk_metrics_port)
    try:
        pages = poller.run(once=once)
    finally:
        poller.close()
    log.info("zendesk poller stopped", pages=pages)
