"""The alert sink (``feedback sink alerts``): consumes ``feedback.signals``, judges, notifies.

Per batch of closed windows, one warehouse transaction stores the windows (``signal_windows``),
the detector's verdicts, the alert changes (``alerts``) and their events (``alert_history``);
only then are the offsets committed (at-least-once; a redelivered window is recognised and
skipped). The :class:`~sinks.alerts.dispatch.Dispatcher` then takes each event to the alerts topic,
the Slack-compatible webhook, the JSON webhook and e-mail, and keeps ``feedback_alert_active``
current. A window that cannot be read goes to ``feedback.dlq``; a database outage is retried with
backoff without losing the batch.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline import metrics
from pipeline.config import AlertSettings
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.schema import DeadLetter, SignalWindow
from pipeline.topics import RecreatedTopicGuard, Topics, commit_processed, ensure_topics, poll_through_outage
from sinks.alerts.channels import Channel, channels_from
from sinks.alerts.dispatch import Dispatcher
from sinks.alerts.judge import SignalJudge, config_from
from sinks.alerts.store import migrate_with_retry
from sinks.warehouse.db import make_engine

log = get_logger(__name__)

GROUP_ID = "feedback-alert-sink"


class AlertSink:
    """Consumer loop of the alert sink; :meth:`stop` ends it after the current batch."""

    def __init__(self, settings: AlertSettings, channels: list[Channel] | None = None) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.engine = make_engine(settings.database_url)
        self.judge = SignalJudge(config_from(settings), settings.signal_resolve_after)
        self.channels = channels
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._publisher: Publisher | None = None
        self.dispatcher: Dispatcher | None = None

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def _connect(self) -> KafkaConsumer:
        return KafkaConsumer(
            self.topics.signals, bootstrap_servers=self.settings.bootstrap,
            group_id=self.settings.topic_prefix + GROUP_ID, client_id="feedback-alert-sink",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.settings.sink_batch_size,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=300_000,
            **self.settings.kafka_client_options(),
        )

    def run(self) -> None:
        migrate_with_retry(self.engine)
        ensure_topics(self.settings)
        self._publisher = Publisher(self.settings, client_id="feedback-alert-sink-dlq")
        channels = self.channels if self.channels is not None else channels_from(self.settings)
        s = self.settings
        self.dispatcher = Dispatcher(self.engine, channels, retry_initial=s.alert_retry_initial_seconds,
                                     retry_max=s.alert_retry_max_seconds, notify_updates=s.alert_notify_updates,
                                     notify_alerts=s.alert_notify_member_alerts)
        self.dispatcher.start()
        actions = self._action_server()
        self._consumer = self._connect()
        guard = RecreatedTopicGuard(s, self._consumer, [self.topics.signals])
        log.info("alert sink started", topic=self.topics.signals, channels=[c.name for c in channels],
                 url=self.engine.url.render_as_string(hide_password=True))
        next_themes = time.monotonic() + min(60.0, s.alert_theme_watch_seconds)  # after the first batches
        try:
            while not self._stop.is_set():
                polled = poll_through_outage(self._consumer, timeout_ms=500, max_records=s.sink_batch_size)
                batch = [m for records in polled.values() for m in records]
                rewound = guard.rewound()  # the broker lost the topic: its offsets start again at 0
                if batch:
                    self._handle(batch, commit=not rewound)
                    self._lag()
                if s.alert_theme_watch_seconds and time.monotonic() >= next_themes:
                    next_themes = time.monotonic() + s.alert_theme_watch_seconds
                    self._watch_themes()
        finally:
            guard.close()
            if actions is not None:
                actions.stop()
            self._consumer.close(autocommit=False)
            self.dispatcher.stop()
            self._publisher.close()
            self.engine.dispose()

    def _handle(self, batch: list[Any], commit: bool = True) -> None:
        assert self._publisher is not None
        started = time.perf_counter()
        windows: list[SignalWindow] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            try:
                windows.append(SignalWindow.model_validate_json(msg.value))
            except (ValidationError, ValueError, TypeError) as exc:
                letters.append(DeadLetter.for_payload(
                    msg.value, stage="alerts", reason="invalid_signal_window", detail=str(exc)[:2000],
                    topic=msg.topic, partition=msg.partition, offset=msg.offset))
        if letters:
            self._publisher.dead_letter(letters)
            metrics.DEAD_LETTERED.labels("alerts", "invalid_signal_window").inc(len(letters))
        result = self._judge_with_retry(windows)
        if result is not None:
            for (sig, scope_type, scope_value), value in result.values.items():
                metrics.SIGNAL_VALUE.labels(sig, scope_type, scope_value).set(value)
            for sig, event in result.events:
                metrics.ALERT_EVENTS.labels(sig, event).inc()
            metrics.WRITTEN.labels("signal_windows").inc(result.windows)
            if result.events and self.dispatcher is not None:
                self.dispatcher.nudge()
        if commit:
            self._commit(batch)
        metrics.BATCH_SECONDS.labels("alerts").observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels("alerts").observe(len(batch))

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

    def _watch_themes(self) -> None:
        """Open an incident for each emerging complaint theme (best effort: retried at the next interval)."""
        from sinks.alerts import themes

        try:
            opened = themes.run_watch(self.engine)
        except Exception:  # a failed clustering or a warehouse outage: the next interval tries again
            log.exception("emerging-theme watch failed")
            return
        if opened:
            log.info("emerging themes", incidents=[str(i) for i in opened])
            if self.dispatcher is not None:
                self.dispatcher.nudge()

    def _judge_with_retry(self, windows: list[SignalWindow]) -> Any:
        if not windows:
            return None
        delay = 0.5
        while True:
            try:
                with self.engine.begin() as conn:
                    return self.judge.judge(conn, windows, datetime.now(UTC))
            except DBAPIError as exc:
                self.judge.reset()  # the cache may hold windows of the rolled-back transaction
                metrics.SINK_ERRORS.labels("alerts").inc()
                log.warning("warehouse write failed; retrying", error=str(exc.orig)[:300], retry_in=delay)
                if self._stop.wait(delay):
                    raise SystemExit(1) from exc  # stopping: offsets stay uncommitted, nothing lost
                delay = min(delay * 2, 30)

    def _commit(self, batch: list[Any]) -> None:
        assert self._consumer is not None
        error = commit_processed(self._consumer, batch)
        if error:
            log.warning("offset commit failed; windows will be redelivered (and skipped)", error=error)

    def _lag(self) -> None:
        assert self._consumer is not None
        try:
            parts = list(self._consumer.assignment())
            ends = self._consumer.end_offsets(parts)
            lag = sum(max(0, ends[tp] - self._consumer.position(tp)) for tp in parts)
            metrics.CONSUMER_LAG.labels("alerts", self.topics.signals).set(lag)
        except (KafkaError, KeyError, AssertionError):
            pass


def run(settings: AlertSettings) -> None:
    sink = AlertSink(settings)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    metrics.serve(settings.alert_metrics_port)
    sink.run()
