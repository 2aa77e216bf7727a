"""The alert sink (``feedback sink alerts``): ``feedback.signals`` -> judged -> notified, on the kernel's sink runner.

:class:`AlertsSink` is a :class:`~pipeline.sink_runner.Sink`: per batch of closed windows, ``write`` is
one warehouse transaction storing the windows (``signal_windows``), the detector's verdicts, the alert
changes (``alerts``) and their events (``alert_history``); the
:class:`~pipeline.sink_runner.SinkRunner` polls, dead-letters a window that cannot be read, retries a
database outage with backoff without losing the batch, and commits the offsets only after the write
(at-least-once; a redelivered window is recognised and skipped). The
:class:`~sinks.alerts.dispatch.Dispatcher` then takes each event to the alerts topic, the
Slack-compatible webhook, the JSON webhook and e-mail, and keeps ``feedback_alert_active`` current.
Between batches (:meth:`AlertsSink.tick`) the emerging-theme watch runs every
``FEEDBACK_ALERT_THEME_WATCH_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from pipeline import metrics
from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.retry import RetryPolicy
from pipeline.signal_config import AlertSettings
from pipeline.signal_schema import SignalWindow
from pipeline.sink_runner import KafkaInput, Message, Rejected, Sink, SinkRunner, serve_until_stopped
from pipeline.topics import Topics, ensure_topics
from sinks.alerts.channels import Channel, channels_from
from sinks.alerts.dispatch import Dispatcher
from sinks.alerts.judge import SignalJudge, config_from
from sinks.alerts.store import migrate_with_retry
from sinks.warehouse.db import make_engine

log = get_logger(__name__)

#: How often the sink looks for incidents still without examples.
EXAMPLES_EVERY_SECONDS = 10.0

GROUP_ID = "feedback-alert-sink"


class AlertsSink(Sink[SignalWindow]):
    """Closed signal windows into the detector and the warehouse. Guarantees: ``write`` is one
    transaction, idempotent (a window stored already is skipped); a database error raises
    TransientError after the judge forgot the rolled-back windows; nothing is refused item by item."""

    name = "alerts"  # the dead letters' stage and the batch metrics' label
    label = "warehouse"
    model = SignalWindow
    invalid_reason = "invalid_signal_window"

    def __init__(self, settings: AlertSettings, channels: list[Channel] | None = None) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.judge = SignalJudge(config_from(settings), settings.signal_resolve_after)
        self.channels = channels
        self.dispatcher: Dispatcher | None = None
        self.actions: Any = None
        self.next_themes = 0.0
        self.next_examples = 0.0

    def setup(self) -> None:
        """Migrations (another process migrating at the same moment is waited out), then the outbox
        dispatcher and the action-link server."""
        try:
            migrate_with_retry(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise TransientError(f"warehouse not available: {str(exc.orig)[:300]}", retry_after=None) from exc
        if self.dispatcher is None:
            s = self.settings
            channels = self.channels if self.channels is not None else channels_from(s)
            self.dispatcher = Dispatcher(self.engine, channels, retry_initial=s.alert_retry_initial_seconds,
                                         retry_max=s.alert_retry_max_seconds, notify_updates=s.alert_notify_updates,
                                         notify_alerts=s.alert_notify_member_alerts)
            self.dispatcher.start()
            self.actions = self._action_server()
            log.info("alert sink started", topic=Topics.from_settings(s).signals, channels=[c.name for c in channels],
                     url=self.engine.url.render_as_string(hide_password=True))
        self.next_themes = time.monotonic() + min(60.0, self.settings.alert_theme_watch_seconds)

    def write(self, items: Sequence[SignalWindow]) -> Sequence[Rejected]:
        try:
            with self.engine.begin() as conn:
                result = self.judge.judge(conn, list(items), datetime.now(UTC))
        except DBAPIError as exc:
            self.judge.reset()  # the cache may hold windows of the rolled-back transaction
            raise TransientError(f"warehouse write failed: {str(exc.orig)[:300]}", retry_after=None) from exc
        for (sig, scope_type, scope_value), value in result.values.items():
            metrics.SIGNAL_VALUE.labels(sig, scope_type, scope_value).set(value)
        for sig, event in result.events:
            metrics.ALERT_EVENTS.labels(sig, event).inc()
        metrics.WRITTEN.labels("signal_windows").inc(result.windows)
        if result.events and self.dispatcher is not None:
            self.dispatcher.nudge()
        return []

    def error_kind(self, exc: TransientError) -> str:
        return "alerts"  # the feedback_sink_errors_total label the alert sink always had

    def tick(self) -> None:
        """The emerging-theme watch, every ``alert_theme_watch_seconds`` (0: never)."""
        every = self.settings.alert_theme_watch_seconds
        if every and time.monotonic() >= self.next_themes:
            self.next_themes = time.monotonic() + every
            self._watch_themes()
        if time.monotonic() >= self.next_examples:
            self.next_examples = time.monotonic() + EXAMPLES_EVERY_SECONDS
            self._fill_examples()

    def _fill_examples(self) -> None:
        """Examples for incidents that opened before the warehouse held their comments (best effort)."""
        from sinks.alerts import incidents

        try:
            with self.engine.begin() as conn:
                incidents.fill_missing_examples(conn, datetime.now(UTC))
        except Exception:  # a warehouse outage: the next interval tries again
            log.exception("incident examples not filled")

    def _watch_themes(self) -> None:
        """Open, attach or resolve emerging-theme incidents (best effort: retried at the next interval)."""
        from sinks.alerts import theme_watch

        try:
            done = theme_watch.run_watch(self.engine)
        except Exception:  # a failed clustering or a warehouse outage: the next interval tries again
            log.exception("emerging-theme watch failed")
            return
        (log.info if done else log.debug)("emerging themes", **theme_watch.describe(done))
        if done and self.dispatcher is not None:
            self.dispatcher.nudge()

    def _action_server(self) -> Any:
        """The server behind the signed acknowledge/resolve links, when FEEDBACK_ALERT_ACTION_URL is set."""
        s = self.settings
        if not s.alert_action_url or s.alert_action_secret is None:
            return None
        from sinks.alerts.actions import ActionServer

        server = ActionServer(self.engine, s.alert_action_secret.get_secret_value().encode(),
                              port=s.alert_action_port).start()
        log.info("incident action links served", port=server.port, url=s.alert_action_url)
        return server

    def close(self) -> None:
        if self.actions is not None:
            self.actions.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.engine.dispose()


class SignalsInput(KafkaInput):
    """The alert sink's consumer group on ``feedback.signals``; keeps ``feedback_consumer_lag`` after each commit."""

    def __init__(self, settings: AlertSettings) -> None:
        self.topic = Topics.from_settings(settings).signals
        super().__init__(settings, self.topic, GROUP_ID, "feedback-alert-sink", settings.sink_batch_size)

    def commit(self, batch: Sequence[Message]) -> str | None:
        error = super().commit(batch)
        try:
            parts = list(self.consumer.assignment())
            ends = self.consumer.end_offsets(parts)
            lag = sum(max(0, ends[tp] - self.consumer.position(tp)) for tp in parts)
            metrics.CONSUMER_LAG.labels("alerts", self.topic).set(lag)
        except (KafkaError, KeyError, AssertionError):
            pass
        return error


def build(settings: AlertSettings, channels: list[Channel] | None = None) -> tuple[SinkRunner[SignalWindow], Publisher]:
    """The alert sink on its runner, reading ``feedback.signals`` in the alert sink's consumer group."""

    def open_input() -> SignalsInput:
        ensure_topics(settings)
        return SignalsInput(settings)

    publisher = Publisher(settings, client_id="feedback-alert-sink-dlq")
    runner = SinkRunner(AlertsSink(settings, channels), open_input, publisher, batch_size=settings.sink_batch_size,
                        batch_ms=settings.sink_batch_ms, retry=RetryPolicy(first=0.5, maximum=30.0))
    return runner, publisher


def run(settings: AlertSettings) -> None:
    runner, publisher = build(settings)
    serve_until_stopped(runner, publisher, settings, settings.metrics_port)  # /readyz: migrated, consuming
