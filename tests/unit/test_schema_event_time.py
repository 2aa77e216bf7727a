"""bounded_event_time: the record model's bound on event times, shared by the processor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import RecordError
from pipeline.schema import MAX_FUTURE_EVENT, FeedbackRecord, bounded_event_time

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def rec(event: datetime, received: datetime = NOW) -> FeedbackRecord:
    return FeedbackRecord(source_ref="r", text="t", event_time=event, received_at=received)


def test_within_the_skew_passes_beyond_it_is_refused() -> None:
    assert bounded_event_time(rec(NOW + MAX_FUTURE_EVENT), NOW).event_time == NOW + MAX_FUTURE_EVENT
    assert bounded_event_time(rec(NOW - timedelta(days=400)), NOW)  # old feedback is fine
    with pytest.raises(RecordError) as err:
        bounded_event_time(rec(NOW + MAX_FUTURE_EVENT + timedelta(seconds=1)), NOW)
    assert err.value.reason == "event_time_in_future"


def test_a_received_at_in_the_future_does_not_lift_the_bound() -> None:
    ahead = NOW + timedelta(days=30)
    with pytest.raises(RecordError, match="event_time_in_future"):
        bounded_event_time(rec(ahead, received=ahead), NOW)
    with pytest.raises(RecordError):  # and an old received_at is its own bound
        bounded_event_time(rec(NOW, received=NOW - timedelta(hours=1)), NOW)
