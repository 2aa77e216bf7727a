"""Prometheus metrics, all named ``feedback_*``; one ``/metrics`` endpoint per process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

RECEIVED = Counter("feedback_received_total", "Inputs received by a connector.", ["source"])
ACCEPTED = Counter("feedback_accepted_total", "Records accepted and acknowledged by the broker.", ["source"])
REJECTED = Counter(
    "feedback_rejected_total", "Inputs rejected by a connector (4xx or skipped).", ["source", "reason"]
)
PUBLISHED = Counter("feedback_published_total", "Records the broker acknowledged.", ["topic"])
PUBLISH_ERRORS = Counter("feedback_publish_errors_total", "Records the broker did not take.", ["topic"])
PROCESSED = Counter("feedback_processed_total", "Records enriched by the processor.", ["source"])
DUPLICATES = Counter("feedback_duplicates_total", "Exact re-deliveries dropped by the processor.")
DEAD_LETTERED = Counter(
    "feedback_dead_lettered_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
WRITTEN = Counter("feedback_written_total", "Rows upserted into the warehouse.", ["table"])
SINK_ERRORS = Counter("feedback_sink_errors_total", "Warehouse write failures (retried).", ["kind"])
BATCH_SECONDS = Histogram(
    "feedback_batch_seconds", "Time to process one batch.", ["stage"], buckets=LATENCY_BUCKETS
)
BATCH_SIZE = Histogram(
    "feedback_batch_size", "Records per batch.", ["stage"], buckets=(1, 10, 50, 100, 250, 500, 1000, 5000)
)
END_TO_END = Histogram(
    "feedback_end_to_end_seconds",
    "From receipt by the pipeline (received_at) to the committed warehouse write.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TO_WRITE = Histogram(
    "feedback_event_to_write_seconds",
    "From the customer's event_time to the committed warehouse write (large for backfills).",
    buckets=(*LATENCY_BUCKETS, 3600, 86400, 7 * 86400),
)

# -- enrichment (processors/enrich.py) -------------------------------------------------------------
REDACTIONS = Counter("feedback_redactions_total", "PII values replaced by a placeholder.", ["kind"])
SENTIMENT_NOT_ASSESSED = Counter(
    "feedback_sentiment_not_assessed_total",
    "Records not scored for sentiment because of their language.", ["language"],
)

# -- support-ticket connectors (connectors/tickets); rejections/skips use REJECTED{source="<system>_webhook"}
TICKET_ITEMS = Counter(
    "feedback_ticket_items_total",
    "Ticket items seen by a ticket connector, by what became of them (feedback, state, skipped reason).",
    ["system", "kind"],
)
TICKET_POLL_REQUESTS = Counter(
    "feedback_ticket_poll_requests_total", "API requests of a ticket poller, by outcome.", ["connector", "outcome"]
)
TICKET_POLL_CHECKPOINT = Gauge(
    "feedback_ticket_poll_checkpoint_timestamp_seconds",
    "When a ticket poller last advanced its cursor checkpoint (after the broker's ack).",
    ["connector"],
)

# -- e-mail connector (connectors/email); skips and dead letters also count in REJECTED{source="email"}
EMAIL_MESSAGES = Counter(
    "feedback_email_messages_total",
    "E-mails read (IMAP or archive import), by outcome: published, skipped, dead_lettered, duplicate.",
    ["outcome"],
)
EMAIL_CONNECTION_ERRORS = Counter(
    "feedback_email_connection_errors_total", "IMAP/broker failures of the e-mail connector (retried).", ["kind"]
)
EMAIL_UIDVALIDITY_RESETS = Counter(
    "feedback_email_uidvalidity_resets_total", "Folders re-read because their UIDVALIDITY changed.", ["folder"]
)
EMAIL_CHECKPOINT_UID = Gauge(
    "feedback_email_checkpoint_uid", "Last UID of a folder acknowledged by the broker.", ["folder"]
)

# -- degrading signals and alerts (processors/signals, sinks/alerts) ------------------------------
SIGNAL_OBSERVATIONS = Counter(
    "feedback_signal_observations_total",
    "Enriched records seen by the signal windows, by outcome (counted, late, duplicate, skipped, invalid).",
    ["outcome"],
)
SIGNAL_WINDOWS_CLOSED = Counter(
    "feedback_signal_windows_closed_total", "Event-time windows closed and published.", ["scope_type"]
)
SIGNAL_WATERMARK = Gauge(
    "feedback_signal_watermark_seconds", "Event-time watermark of the signal windows (unix time)."
)


# -- labels fed from record data ---------------------------------------------------------------------
#: Scopes whose values a client chooses (any /v1/events client names its own products and channels):
#: never exported as they are (PII, unbounded series), but as ``h_`` + 12 hex digits of a SHA-256,
#: unless listed in FEEDBACK_METRIC_LABEL_VALUES. Sources and categories are the pipeline's own names.
CLIENT_SCOPES = frozenset({"product", "channel"})
#: Most series of one scoped gauge; the least recently set one is evicted beyond it.
MAX_SCOPE_SERIES = 1000
#: A series not set for this long is evicted (its scope went quiet, or was renamed).
STALE_SCOPE_SECONDS = 24 * 3600.0
_allowed_values: frozenset[str] | None = None


def allowed_label_values() -> frozenset[str]:
    """FEEDBACK_METRIC_LABEL_VALUES, read once: product/channel values that may appear as they are."""
    global _allowed_values
    if _allowed_values is None:
        from pipeline.config import CommonSettings

        try:
            _allowed_values = frozenset(CommonSettings().metric_label_values)
        except Exception:  # a settings error is reported by the component's own load; hash everything
            _allowed_values = frozenset()
    return _allowed_values


def scope_label(scope_type: str, scope_value: str) -> str:
    """The label value of a scope: its own for the pipeline's scopes and allowed values, else a hash."""
    if scope_type not in CLIENT_SCOPES or scope_value in allowed_label_values():
        return scope_value
    return "h_" + hashlib.sha256(f"{scope_type}:{scope_value}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


class ScopedGauge(Gauge):
    """A gauge labelled ``(..., scope_type, scope_value, ...)`` whose label values may come from records:
    scope values go through :func:`scope_label`, at most :data:`MAX_SCOPE_SERIES` series are kept (the
    least recently set evicted), and series not set for :data:`STALE_SCOPE_SECONDS` are evicted. Call
    sites use ``labels``/``remove`` with the raw values as before."""

    _scope_at: int | None = None  # index of scope_type in the label names (None: a child series)

    def bound_scopes(self) -> ScopedGauge:
        self._scope_at = list(self._labelnames).index("scope_type")
        self._touched: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._swept = 0.0
        return self

    def _mapped(self, values: tuple[Any, ...]) -> tuple[str, ...]:
        out = [str(v) for v in values]
        at = self._scope_at
        if at is not None and len(out) > at + 1:
            out[at + 1] = scope_label(out[at], out[at + 1])
        return tuple(out)

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        if self._scope_at is None or labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)
        values = self._mapped(labelvalues)
        with _SCOPE_LOCK:
            now = time.monotonic()
            self._touched[values] = now
            self._touched.move_to_end(values)
            while len(self._touched) > MAX_SCOPE_SERIES:
                self._evict(next(iter(self._touched)))
            if now - self._swept > 60:
                self._swept = now
                for old in [k for k, at in self._touched.items() if now - at > STALE_SCOPE_SECONDS]:
                    self._evict(old)
        return super().labels(*values)

    def remove(self, *labelvalues: Any) -> None:
        values = self._mapped(labelvalues) if self._scope_at is not None else labelvalues
        with _SCOPE_LOCK:
            if self._scope_at is not None:
                self._touched.pop(values, None)  # type: ignore[arg-type]
        super().remove(*values)

    def _evict(self, values: tuple[str, ...]) -> None:
        self._touched.pop(values, None)
        with contextlib.suppress(KeyError):
            super().remove(*values)
        SCOPE_SERIES_EVICTED.labels(self._name).inc()


_SCOPE_LOCK = threading.Lock()
SCOPE_SERIES_EVICTED = Counter(
    "feedback_metric_series_evicted_total", "Series of scoped gauges evicted (too many, or stale).", ["metric"])
SIGNAL_VALUE = ScopedGauge(
    "feedback_signal_value", "Value of a signal in the latest judged window of its scope (product and channel "
    "values hashed unless allowed by FEEDBACK_METRIC_LABEL_VALUES).",
    ["signal", "scope_type", "scope_value"],
).bound_scopes()
ALERT_ACTIVE = ScopedGauge(
    "feedback_alert_active", "1 while an alert is open or acknowledged for (signal, scope), else 0 (scope "
    "values as in feedback_signal_value).",
    ["signal", "scope_type", "scope_value", "severity"],
).bound_scopes()
ALERT_EVENTS = Counter("feedback_alert_events_total", "Alert lifecycle events.", ["signal", "event"])
ALERT_DELIVERIES = Counter(
    "feedback_alert_deliveries_total", "Alert notification attempts, by channel and outcome.", ["channel", "outcome"]
)
ALERT_OUTBOX_PENDING = Gauge(
    "feedback_alert_outbox_pending", "Alert notifications not yet delivered, by channel.", ["channel"]
)
CONSUMER_LAG = Gauge(
    "feedback_consumer_lag", "Records behind the end of the topic (unreliable on the embedded broker).",
    ["component", "topic"],
)

# -- backfill, replay, retention (connectors/backfill, sinks/warehouse/retention.py) -------------
IMPORT_ROWS = Counter(
    "feedback_import_rows_total", "Rows read by `feedback import`, by outcome (published, rejected, duplicate).",
    ["outcome"],
)
REPLAYED = Counter(
    "feedback_replayed_total", "Dead letters looked at by `feedback replay`, by outcome.", ["outcome"]
)
ERASED_DROPPED = Counter(
    "feedback_erased_dropped_total", "Records of erased customers not written back (the erasure ledger), by stage.",
    ["stage"])
RETENTION_DELETED = Counter(
    "feedback_retention_deleted_total", "Warehouse rows deleted by purge or erasure.", ["action", "table"]
)


Readiness = Callable[[], bool]


def broker_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when at least one of the comma-separated ``host:port`` bootstrap servers accepts a TCP connection."""
    import socket

    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes come every few seconds: no access log
        pass


class HealthApp:
    """WSGI app of a component without its own HTTP server: ``/metrics``, ``/healthz``, ``/readyz``.

    Guarantees: ``/healthz`` answers 200 while the process can serve requests (liveness);
    ``/readyz`` answers 200 only when the component's readiness callable returns true, and 503
    with a JSON error body when it returns false or raises (it never raises itself); every other
    path is Prometheus' exposition of this process's registry.
    """

    def __init__(self, ready: Readiness) -> None:
        self.ready = ready
        self.metrics_app = make_wsgi_app()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            return self._json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            try:
                ok = bool(self.ready())
            except Exception:  # readiness must never raise
                ok = False
            if ok:
                return self._json(start_response, "200 OK", {"status": "ready"})
            return self._json(start_response, "503 Service Unavailable",
                              {"error": "not_ready", "message": "the broker is not reachable or the component "
                               "has not started", "details": []})
        return self.metrics_app(environ, start_response)  # type: ignore[no-any-return]

    @staticmethod
    def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def serve(port: int, host: str | None = None, ready: Readiness | None = None) -> ThreadingWSGIServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on a daemon thread; returns the server.

    ``host`` defaults to ``FEEDBACK_METRICS_HOST`` (``127.0.0.1``; ``0.0.0.0`` in containers so that
    Prometheus and the orchestrator's probes reach it). ``ready`` is the component's readiness
    check; the default checks that a bootstrap server of ``FEEDBACK_KAFKA_BOOTSTRAP`` accepts
    connections. A port already in use is a :class:`~pipeline.errors.ConfigError`.
    """
    from pipeline.config import CommonSettings, load
    from pipeline.errors import ConfigError

    if host is None or ready is None:
        common = load(CommonSettings)
        host = common.metrics_host if host is None else host
        if ready is None:
            bootstrap = common.bootstrap
            ready = lambda: broker_reachable(bootstrap)  # noqa: E731
    try:
        server = make_server(host, port, HealthApp(ready), ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc} "
                          "(set the component's FEEDBACK_*_METRICS_PORT)") from exc
    thread = threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True)
    thread.start()
    return server
