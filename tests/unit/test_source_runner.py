"""The source runner's guarantees, with the kernel's test doubles (no broker, no database)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from pipeline.errors import ConfigError, TransientError
from pipeline.retry import RetryPolicy
from pipeline.schema import DeadLetter, FeedbackRecord, utcnow
from pipeline.sources import Batch, SourceRunner
from pipeline.testing import ListSource, MemoryPublisher, RecordingStateStore, transient


class InstantEvent(threading.Event):
    """A stop event whose waits return at once and are recorded (no test sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def record(ref: str) -> FeedbackRecord:
    return FeedbackRecord(source="event", source_ref=ref, text=f"comment {ref}", received_at=utcnow())


def letter(reason: str) -> DeadLetter:
    return DeadLetter.for_payload(b"{}", stage="test", reason=reason, detail="bad")


def runner_for(items: list[Batch | Exception], events: list[str], **kw: object) -> tuple[
        SourceRunner, ListSource, MemoryPublisher, RecordingStateStore]:
    source = ListSource(items, events=events)
    publisher, store = MemoryPublisher(events), RecordingStateStore(events)
    runner = SourceRunner(source, publisher, store, retry=RetryPolicy(first=0.1, maximum=1.0), once=True, **kw)  # type: ignore[arg-type]
    runner._stop = InstantEvent()
    return runner, source, publisher, store


def test_cursor_is_saved_only_after_records_and_dead_letters_were_acknowledged() -> None:
    events: list[str] = []
    batch = Batch(records=[record("a"), record("b")], dead_letters=[letter("garbage")],
                  skipped=Counter(internal_note=1), cursors={"cursor": {"after": "c1"}})
    runner, source, publisher, store = runner_for([batch, Batch(cursors={"cursor": {"after": "c2"}}, idle=True)],
                                                  events)
    assert runner.run() == 2
    assert events == ["publish:2", "dead_letter:1", "acknowledged", "save:cursor", "acknowledged", "save:cursor"]
    assert [r.source_ref for r in publisher.records] == ["a", "b"]
    assert store.get("list", "cursor") == {"after": "c2"}
    assert source.cursor_seen == [None, {"after": "c1"}]  # each page read after the cursor saved before it


def test_a_failed_publish_saves_no_cursor_and_the_page_is_read_again_from_the_saved_cursor() -> None:
    events: list[str] = []
    first = Batch(records=[record("a")], cursors={"cursor": {"after": "c1"}})
    second = Batch(records=[record("b")], cursors={"cursor": {"after": "c2"}})
    # the source serves page 2 twice: once before the broker fails, once after the reopen
    runner, source, publisher, store = runner_for([first, second, second, Batch(idle=True)], events)
    original = publisher.publish
    failed: list[str] = []

    def flaky(records: list[FeedbackRecord], timeout: float = 30.0) -> None:
        if records[0].source_ref == "b" and not failed:
            failed.append("b")
            raise TransientError("broker did not acknowledge", retry_after=0.5)
        original(records, timeout)

    publisher.publish = flaky  # type: ignore[method-assign]
    assert runner.run() == 3
    assert store.saves == [("list", {"cursor": {"after": "c1"}}), ("list", {"cursor": {"after": "c2"}})]
    # after the failure the source was closed and opened again, and read from c1 (not c2)
    assert source.opened == 2 and source.closed == 2
    assert source.cursor_seen == [None, {"after": "c1"}, {"after": "c1"}, {"after": "c2"}]
    assert [r.source_ref for r in publisher.records] == ["a", "b"]


def test_retry_after_is_a_lower_bound_of_the_backoff() -> None:
    events: list[str] = []
    runner, _source, _publisher, _store = runner_for(
        [transient("rate limited", retry_after=7.0), transient("flaky"), Batch(idle=True)], events)
    runner.run()
    waits = runner._stop.waits  # type: ignore[attr-defined]
    assert waits[0] >= 7.0  # Retry-After honoured although the policy's first delay is 0.1 s
    assert 0.08 <= waits[1] <= 1.0  # the policy's own (jittered) delay when no Retry-After is given
    assert runner.health.consecutive_failures == 0 and runner.health.batches == 1


def test_config_error_stops_the_runner_and_is_raised() -> None:
    runner, source, _publisher, store = runner_for([ConfigError("bad token")], [])
    with pytest.raises(ConfigError):
        runner.run()
    assert source.closed == 1 and not runner.health.running and not store.saves


def test_unknown_errors_are_not_retried_unless_the_source_lists_them() -> None:
    runner, source, _publisher, _store = runner_for([OSError("reset"), Batch(idle=True)], [])
    with pytest.raises(OSError):
        runner.run()
    runner, source, _publisher, _store = runner_for([OSError("reset"), Batch(idle=True)], [])
    source.retry_on = (OSError,)
    assert runner.run() == 1 and source.opened == 2


def test_stop_ends_the_loop_after_the_batch_in_hand() -> None:
    events: list[str] = []
    source = ListSource([], events=events, poll_interval=60)
    publisher, store = MemoryPublisher(events), RecordingStateStore(events)
    runner = SourceRunner(source, publisher, store)

    def next_batch() -> Batch:
        runner.stop()  # stop requested while the page is being read
        return Batch(records=[record("x")], cursors={"cursor": {"n": 1}})

    source.next_batch = next_batch  # type: ignore[method-assign]
    thread = threading.Thread(target=runner.run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert events == ["publish:1", "acknowledged", "save:cursor"]  # the batch in hand was finished
    assert store.get("list", "cursor") == {"n": 1} and source.closed == 1


def test_a_failure_while_waiting_for_input_is_retried_like_one_while_reading() -> None:
    events: list[str] = []
    runner, source, _publisher, _store = runner_for([Batch(idle=True), Batch(records=[record("a")], idle=True)],
                                                    events)
    runner.once = False
    waits = {"n": 0}

    def wait(stop: threading.Event) -> None:
        waits["n"] += 1
        if waits["n"] == 1:
            raise TransientError("connection dropped while idling", retry_after=3.0)
        runner.stop()

    source.wait = wait  # type: ignore[method-assign]
    runner.run()
    assert source.opened == 2 and runner._stop.waits[0] >= 3.0  # type: ignore[attr-defined]
    assert events == ["acknowledged", "publish:1", "acknowledged"]
