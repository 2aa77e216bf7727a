"""The follow-up sink's registration with the kernel (entry points in pyproject.toml) and its run loop."""

from __future__ import annotations

from pipeline.config import load
from pipeline.plugins import Service
from pipeline.publisher import Publisher
from pipeline.retry import RetryPolicy
from pipeline.sink_runner import KafkaInput, SinkRunner, serve_until_stopped
from pipeline.topics import Topics, ensure_topics

GROUP_ID = "feedback-followups"


def _configured() -> bool:
    from sinks.followups.sink import FollowupSettings

    return load(FollowupSettings).followup_target != "none"


#: ``feedback up`` runs the follow-up sink when a target is set (the warehouse sink keeps the contacts).
SERVICE = Service(("sink", "followups"), order=40, enabled=_configured)


def run() -> None:
    """feedback.enriched (its own consumer group) -> contacts and follow-ups, until SIGTERM."""
    from pipeline import logging as plog
    from sinks.followups.sink import FollowupSettings, FollowupSink

    settings = load(FollowupSettings)
    plog.configure(settings.log_level, settings.log_format, "followups")
    topic = Topics.from_settings(settings).enriched

    def open_input() -> KafkaInput:
        ensure_topics(settings)
        return KafkaInput(settings, topic, GROUP_ID, "feedback-followups", settings.sink_batch_size)

    publisher = Publisher(settings, client_id="feedback-followups-dlq")
    runner = SinkRunner(FollowupSink(settings), open_input, publisher, batch_size=min(settings.sink_batch_size, 100),
                        batch_ms=settings.sink_batch_ms,
                        retry=RetryPolicy(first=1.0, maximum=max(60.0, settings.sink_max_backoff_seconds)))
    serve_until_stopped(runner, publisher, settings, settings.metrics_port)
