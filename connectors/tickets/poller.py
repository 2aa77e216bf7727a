"""``feedback connector zendesk``: Zendesk's cursor-based incremental ticket export, polled.

Per page of ``/api/v2/incremental/tickets/cursor.json``: each ticket becomes its ticket record (with
its current state) and its satisfaction rating; its comments (``/api/v2/tickets/{id}/comments.json``)
become one record per public end-user comment (internal notes and agent replies are skipped and
counted). A ticket that cannot be mapped goes to ``feedback.dlq`` with the reason.

It is a :class:`~pipeline.sources.PollingSource`: one export page is one batch, whose cursor the
:class:`~pipeline.sources.SourceRunner` saves in the state store (``source_state``, namespace
``zendesk:<host>``) only after the broker acknowledged every record and dead letter of the page, so a
crash at any point re-reads at most one page, whose records carry the same deterministic ids (no
duplicates, nothing lost). ``429`` and 5xx answers and network errors raise
:class:`~pipeline.errors.TransientError` (with ``Retry-After`` when Zendesk sent one) and the runner
reads the page again after its backoff; 401/403 (and other 4xx) raise
:class:`~pipeline.errors.ConfigError` (exit code 2). A cursor file of an earlier version
(``FEEDBACK_ZENDESK_CHECKPOINT_FILE``) is imported into the state store once.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
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
from pipeline.retry import RetryPolicy
from pipeline.schema import DeadLetter
from pipeline.sources import Batch, PollingSource, SourceRunner, StateView
from pipeline.state import SqlStateStore, StateStore

log = get_logger(__name__)

CONNECTOR = "zendesk"
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SIDELOADS = "users,groups,metric_sets"


def legacy_cursor(path: Path) -> dict[str, Any] | None:
    """The state of a cursor file written by an earlier version (``{"cursor": ...}``), if any."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the checkpoint {path} is unreadable ({exc}); fix or remove it") from exc
    return data if isinstance(data, dict) and data.get("cursor") else None


def base_url(settings: ZendeskSettings) -> str:
    if settings.zendesk_base_url:
        return settings.zendesk_base_url.rstrip("/")
    return f"https://{settings.zendesk_subdomain}.zendesk.com"


def host_of(settings: ZendeskSettings) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(base_url(settings)).netloc)


def checkpoint_path(settings: ZendeskSettings) -> Path:
    """Where an earlier version kept the cursor (imported into the state store once)."""
    if settings.zendesk_checkpoint_file:
        return settings.zendesk_checkpoint_file
    return settings.data_dir / "connectors" / f"zendesk-{host_of(settings)}.json"


def state_namespace(settings: ZendeskSettings) -> str:
    """The poller's namespace in the state store (its cursor is the key ``cursor``)."""
    return f"zendesk:{host_of(settings)}"


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
    """GETs against the Zendesk API with its rate limits and failures mapped to typed errors.

    Guarantees: a 200 with a JSON object is returned; 429, 5xx, a body that is not a JSON object and
    network errors raise TransientError (``retry_after`` from Zendesk's ``Retry-After``); 401/403 and
    other 4xx raise ConfigError (404 -> ``{}`` when ``missing_ok``: the item vanished meanwhile).
    """

    def __init__(self, settings: ZendeskSettings) -> None:
        check_settings(settings)
        assert settings.zendesk_api_token is not None
        self.settings = settings
        self.http = httpx.Client(
            base_url=base_url(settings),
            auth=(f"{settings.zendesk_email}/token", settings.zendesk_api_token.get_secret_value()),
            timeout=settings.zendesk_request_timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": "feedback-pipeline"},
        )

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, params: dict[str, Any] | None = None, missing_ok: bool = False) -> dict[str, Any]:
        try:
            resp = self.http.get(url, params=params)
        except httpx.TransportError as exc:
            metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "network_error").inc()
            raise TransientError(f"zendesk unreachable: {exc}") from exc
        status = resp.status_code
        retry_after = _retry_after(resp.headers.get("retry-after"))
        if status == 200:
            try:
                body = resp.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "ok").inc()
                return body
            metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "bad_body").inc()
            raise TransientError(f"zendesk answered a body that is not a JSON object for {url}")
        if status == 429:
            metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "rate_limited").inc()
            raise TransientError("zendesk rate limit", retry_after=retry_after)
        if status >= 500:
            metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, "server_error").inc()
            raise TransientError(f"zendesk server error {status}", retry_after=retry_after)
        metrics.TICKET_POLL_REQUESTS.labels(CONNECTOR, f"http_{status}").inc()
        if status == 404 and missing_ok:
            return {}
        if status in (401, 403):
            raise ConfigError(
                f"Zendesk refused the credentials ({status}) at {base_url(self.settings)}: check "
                "FEEDBACK_ZENDESK_EMAIL and FEEDBACK_ZENDESK_API_TOKEN (token access enabled, "
                "an agent/admin allowed to export)")
        raise ConfigError(f"Zendesk answered {status} for {url}: {resp.text[:300]}")

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


class ZendeskSource(PollingSource):
    """Zendesk's incremental ticket export as a polling source: one export page per batch, its
    ``after_cursor`` the batch's cursor (guarantees: see the module docstring)."""

    name = CONNECTOR

    def __init__(self, settings: ZendeskSettings) -> None:
        check_settings(settings)
        self.settings = settings
        self.namespace = state_namespace(settings)
        self.poll_interval = settings.zendesk_poll_interval_seconds
        self.customer_key = settings.customer_key()
        self.client: ZendeskClient | None = None

    def open(self, state: StateView) -> None:
        super().open(state)
        self.client = ZendeskClient(self.settings)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def next_batch(self) -> Batch:
        assert self.client is not None
        cursor = (self.state.get() or {}).get("cursor")
        params = {"cursor": cursor} if cursor else {"start_time": self.settings.zendesk_start_time}
        page = self.client.get(EXPORT_PATH, {**params, "include": SIDELOADS})
        batch = self._map(page)
        batch.cursors = {"cursor": {"cursor": page.get("after_cursor") or cursor, "updated_at": time.time()}}
        batch.idle = bool(page.get("end_of_stream"))
        return batch

    def _map(self, page: dict[str, Any]) -> Batch:
        """Map one export page (fetching each ticket's comments); nothing is published here."""
        assert self.client is not None
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
        return Batch(records=mapped.records, dead_letters=letters, skipped=Counter(mapped.skipped))

    def saved(self, batch: Batch) -> None:
        metrics.TICKET_POLL_CHECKPOINT.labels(CONNECTOR).set(batch.cursors["cursor"]["updated_at"])
        metrics.ACCEPTED.labels("zendesk_poll").inc(len(batch.records))
        for record in batch.records:
            metrics.TICKET_ITEMS.labels(CONNECTOR, "state" if record.is_ticket_state else "feedback").inc()
        for reason, count in batch.skipped.items():
            metrics.TICKET_ITEMS.labels(CONNECTOR, f"skipped_{reason}").inc(count)
            metrics.REJECTED.labels("zendesk_poll", reason).inc(count)


def import_legacy_cursor(settings: ZendeskSettings, store: StateStore) -> None:
    """Move the cursor of an earlier version's file into the state store (once; the file is renamed)."""
    path = checkpoint_path(settings)
    namespace = state_namespace(settings)
    state = legacy_cursor(path)
    if state is None:
        return
    if store.get(namespace, "cursor") is None:
        store.save(namespace, {"cursor": {"cursor": state["cursor"], "updated_at": state.get("updated_at")}})
        log.info("imported the cursor file into the state store", file=str(path), namespace=namespace)
    path.replace(path.with_name(path.name + ".imported"))


def build(settings: ZendeskSettings, once: bool = False, publisher: Publisher | None = None,
          store: StateStore | None = None) -> SourceRunner:
    """The Zendesk source on its runner (the state store in the warehouse database unless given)."""
    if store is None:
        store = SqlStateStore.from_url(settings.database_url)
    import_legacy_cursor(settings, store)
    source = ZendeskSource(settings)
    return SourceRunner(source, publisher or Publisher(settings, client_id="feedback-zendesk"), store,
                        retry=RetryPolicy(first=0.5, maximum=settings.zendesk_max_backoff_seconds, jitter=0.1),
                        once=once)


def run(settings: ZendeskSettings, once: bool = False) -> None:
    """The CLI entry: signals stop the poller after the page in hand (its cursor saved)."""
    runner = build(settings, once=once)
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    if settings.zendesk_metrics_port:
        metrics.serve(settings.zendesk_metrics_port, ready=lambda: runner.health.running)
    log.info("zendesk poller started", url=base_url(settings), namespace=runner.source.namespace)
    try:
        pages = runner.run()
    finally:
        runner.publisher.close()  # type: ignore[attr-defined]
    log.info("zendesk poller stopped", pages=pages)
