"""The sink runner's guarantees, with the kernel's test doubles (no broker, no database)."""

from __future__ import annotations

import json
import threading

import pytest

from pipeline.errors import RecordError
from pipeline.retry import RetryPolicy
from pipeline.sink_runner import SinkRunner
from pipeline.testing import ListInput, ListSink, MemoryPublisher, transient


class InstantEvent(threading.Event):
    """A stop event whose waits return at once and are recorded (no test sleeps). The inputs below stop
    the runner once they are drained; ``interrupts`` says whether that also interrupts a retry's wait."""

    def __init__(self, interrupts: bool = False) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.interrupts = interrupts

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.interrupts and self.is_set()


def decode(value: bytes) -> dict[str, object]:
    item = json.loads(value)
    if not isinstance(item, dict):
        raise RecordError("not_an_object", "expected a JSON object")
    return item


def setup(values: list[bytes], events: list[str], batch_size: int = 10) -> tuple[
        SinkRunner[object], ListInput, ListSink, MemoryPublisher]:
    sink = ListSink(decode=decode, events=events, reject=lambda i: "refused" if i.get("bad") else None)
    publisher = MemoryPublisher(events)
    runner: SinkRunner[object] = SinkRunner(sink, lambda: source, publisher, batch_size=batch_size, batch_ms=50,
                                            retry=RetryPolicy(first=0.2, maximum=2.0))
    source = ListInput(values, events=events, on_empty=runner.stop)
    runner._stop = InstantEvent()
    return runner, source, sink, publisher


def test_commit_only_after_write_and_dead_letters() -> None:
    events: list[str] = []
    values = [b'{"n": 1}', b"not json", b"[1]", b'{"n": 2, "bad": true}', b'{"n": 3}']
    runner, source, sink, publisher = setup(values, events)
    runner.run()
    assert events == ["write:2", "dead_letter:3", "commit:4"]
    assert sink.written == [{"n": 1}, {"n": 3}]
    reasons = [(d.reason, d.offset, d.stage) for d in publisher.dead_letters]
    assert reasons == [("invalid_record", 1, "test_sink"), ("not_an_object", 2, "test_sink"),
                       ("refused", 3, "test_sink")]
    assert publisher.dead_letters[2].original_bytes() == b'{"n": 2, "bad": true}'  # the original bytes
    assert source.closed and sink.closed and runner.health.written == 2 and runner.health.dead_letters == 3


def test_a_failed_write_is_retried_with_retry_after_and_nothing_is_committed_before() -> None:
    events: list[str] = []
    runner, _source, sink, _publisher = setup([b'{"n": 1}', b'{"n": 2}'], events)
    sink.fail = [transient("database locked", retry_after=5.0), transient("still down")]
    runner.run()
    assert events == ["write_failed", "write_failed", "write:2", "commit:1"]
    waits = runner._stop.waits  # type: ignore[attr-defined]
    assert waits[0] >= 5.0 and 0.2 <= waits[1] < 5.0
    assert sink.written == [{"n": 1}, {"n": 2}]


def test_a_dead_letter_the_broker_does_not_acknowledge_blocks_the_commit_until_it_does() -> None:
    events: list[str] = []
    runner, _source, _sink, publisher = setup([b"garbage", b'{"n": 1}'], events)
    publisher.fail = [transient("broker down", retry_after=1.0)]
    runner.run()
    assert events == ["write:1", "dead_letter:1", "commit:1"]
    assert len(publisher.dead_letters) == 1


def test_setup_is_retried_then_every_batch_is_written_and_committed() -> None:
    events: list[str] = []
    runner, _source, sink, _publisher = setup([b'{"n": 1}', b'{"n": 2}'], events, batch_size=1)
    sink.setup_fail = [transient("migrations racing")]
    runner.run()
    assert sink.setup_fail == []  # the failed setup was retried
    assert events == ["write:1", "commit:0", "write:1", "commit:1"]


def test_stop_during_a_retry_exits_without_committing() -> None:
    events: list[str] = []
    runner, source, sink, _publisher = setup([b'{"n": 1}'], events)
    sink.fail = [transient("down")] * 3
    runner._stop = InstantEvent(interrupts=True)
    runner._stop.set()  # stopping: the first wait returns True
    with pytest.raises(SystemExit):
        runner.handle(source.poll(100, 10))
    assert source.commits == [] and sink.written == []
