"""The raw, enriched and dead-letter topics are created with FEEDBACK_TOPIC_RETENTION_HOURS: the erasure horizon."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.config import CommonSettings
from pipeline.topics import ensure_topics

pytestmark = pytest.mark.integration


def retention_ms(bootstrap: str, topics: list[str]) -> dict[str, Any]:
    """Each topic's retention.ms as the broker reports it (None: the broker's default)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="retention-test")
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics],
                                       config_filter="all")
    finally:
        admin.close()
    by_name = next(iter(found.values())) if isinstance(found, dict) and len(found) == 1 else found
    out: dict[str, Any] = {}
    for t in topics:
        entry = by_name.get(t, {}).get("retention.ms")
        out[t] = entry.get("value") if isinstance(entry, dict) else entry
    return out


def test_topics_holding_customer_data_get_the_retention(kafka_bootstrap: str) -> None:
    settings = CommonSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"ret{uuid.uuid4().hex[:6]}.",
                              topic_partitions=1, topic_retention_hours=36)
    topics = ensure_topics(settings)
    found = retention_ms(kafka_bootstrap, list(topics.all()))
    hours36 = str(36 * 3_600_000)
    assert {t: found[t] for t in (topics.raw, topics.enriched, topics.dlq)} == dict.fromkeys(
        (topics.raw, topics.enriched, topics.dlq), hours36)
    assert found[topics.alerts] != hours36 and found[topics.signals] != hours36  # aggregates: the broker's default
