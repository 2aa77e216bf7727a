"""TopicWatch.renewed: a watch whose check hung is replaced without forgetting the ids it has seen."""

from __future__ import annotations

from pipeline.config import CommonSettings
from pipeline.topics import TopicWatch


def test_renewed_watch_keeps_topics_provisioning_and_ids_but_not_the_connection() -> None:
    settings = CommonSettings(kafka_bootstrap="127.0.0.1:9", topic_watch_seconds=0.1)  # nothing listens
    old = TopicWatch(settings, ["a"], provision={"b": 1})
    old.add("c")
    old._ids = {"a": "id-a", "b": "id-b"}
    new = old.renewed()
    assert new is not old
    assert new.names == ("a", "b", "c") and new.provision == {"b": 1}
    assert new._ids == {"a": "id-a", "b": "id-b"} and new._ids is not old._ids
    assert new._admin is None
    # the broker is away: no answer, no exception, nothing reported as recreated
    assert new.check() == set()
    assert new._ids == {"a": "id-a", "b": "id-b"}
