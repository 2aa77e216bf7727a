"""Test doubles for the source and sink contracts, so a component's loop is tested without a broker.

- :class:`MemoryPublisher`: a publisher that keeps what it was given (and can be told to fail);
- :class:`ListSource`: a polling source that serves prepared batches (or raises prepared errors);
- :class:`ListInput`: a sink input that serves prepared messages and records commits;
- :class:`ListSink`: a sink that keeps what it wrote (and can fail or reject on demand).

Each double records the order of the calls made to it in a shared ``events`` list when given one,
so a test can assert e.g. that a cursor was saved only after the acks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import TransientError
from pipeline.schema import DeadLetter, FeedbackRecord
from pipeline.sink_runner import Message, Rejected, Sink
from pipeline.sources import Batch, PollingSource, StateView
from pipeline.state import MemoryStateStore

Events = list[str]


class MemoryPublisher:
    """A publisher in memory. Guarantees: a call returns only after the items are stored (that is its
    "ack"); ``fail`` holds errors raised by the next calls instead (one per call)."""

    def __init__(self, events: Events | None = None) -> None:
        self.records: list[FeedbackRecord] = []
        self.dead_letters: list[DeadLetter] = []
        self.fail: list[Exception] = []
        self.events = events if events is not None else []
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    def publish(self, records: Sequence[FeedbackRecord], timeout: float = 30.0) -> None:
        with self._lock:
            self._maybe_fail()
            self.records.extend(records)
            self.events.append(f"publish:{len(records)}")

    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = 30.0) -> None:
        with self._lock:
            self._maybe_fail()
            self.dead_letters.extend(letters)
            self.events.append(f"dead_letter:{len(letters)}")

    async def publish_async(self, records: Sequence[FeedbackRecord], timeout: float = 10.0) -> None:
        self.publish(records, timeout)

    async def ready_async(self) -> bool:
        return True


class RecordingStateStore(MemoryStateStore):
    """A :class:`~pipeline.state.MemoryStateStore` that notes each save in ``events``."""

    def __init__(self, events: Events | None = None) -> None:
        super().__init__()
        self.events = events if events is not None else []

    def save(self, namespace: str, entries: Any) -> None:
        super().save(namespace, entries)
        self.events.append(f"save:{','.join(sorted(entries))}")


class ListSource(PollingSource):
    """Serves ``items`` in order: a :class:`Batch` is returned, an exception raised. After the last
    one it answers idle batches. ``opened`` counts :meth:`open` calls, ``cursor_seen`` what the state
    view held at each call."""

    def __init__(self, items: Iterable[Batch | Exception], name: str = "list", poll_interval: float = 0.01,
                 events: Events | None = None) -> None:
        self.items = list(items)
        self.name = self.namespace = name
        self.poll_interval = poll_interval
        self.events = events if events is not None else []
        self.opened = 0
        self.closed = 0
        self.cursor_seen: list[dict[str, Any] | None] = []

    def open(self, state: StateView) -> None:
        super().open(state)
        self.opened += 1

    def next_batch(self) -> Batch:
        self.cursor_seen.append(self.state.get())
        if not self.items:
            return Batch(idle=True)
        item = self.items.pop(0)
        if isinstance(item, Exception):
            self.events.append(f"raise:{type(item).__name__}")
            raise item
        return item

    def acknowledged(self, batch: Batch) -> None:
        self.events.append("acknowledged")

    def close(self) -> None:
        self.closed += 1


@dataclass
class ListMessage:
    """A consumed message (the fields of kafka-python's ``ConsumerRecord`` the runner uses)."""

    value: bytes
    topic: str = "test"
    partition: int = 0
    offset: int = 0


class ListInput:
    """A sink input over prepared messages; ``commits`` holds each committed batch's last offset."""

    def __init__(self, values: Iterable[bytes], topic: str = "test", events: Events | None = None,
                 on_empty: Callable[[], None] | None = None) -> None:
        self.messages = [ListMessage(v, topic, 0, i) for i, v in enumerate(values)]
        self.position = 0
        self.commits: list[int] = []
        self.closed = False
        self.events = events if events is not None else []
        self.on_empty = on_empty  # e.g. the runner's stop, once everything was read and committed

    def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        out = self.messages[self.position:self.position + max_records]
        self.position += len(out)
        if not out and self.on_empty is not None and self.drained:
            self.on_empty()
        return list(out)

    @property
    def drained(self) -> bool:
        """Every message was read and the last one committed."""
        return self.position >= len(self.messages) and (
            not self.messages or (bool(self.commits) and self.commits[-1] >= self.messages[-1].offset))

    def commit(self, batch: Sequence[Message]) -> str | None:
        self.commits.append(max(m.offset for m in batch))
        self.events.append(f"commit:{self.commits[-1]}")
        return None

    def close(self) -> None:
        self.closed = True


class ListSink(Sink[Any]):
    """A sink that appends what it writes to ``written``. ``fail`` holds errors raised by the next
    writes (one per call); ``reject`` decides per item whether to refuse it (returns a reason)."""

    name = "test_sink"
    label = "test store"

    def __init__(self, decode: Callable[[bytes], Any] | None = None, events: Events | None = None,
                 reject: Callable[[Any], str | None] | None = None) -> None:
        self._decode = decode or (lambda value: value.decode())
        self.written: list[Any] = []
        self.fail: list[Exception] = []
        self.setup_fail: list[Exception] = []
        self.reject = reject
        self.events = events if events is not None else []
        self.closed = False

    def setup(self) -> None:
        if self.setup_fail:
            raise self.setup_fail.pop(0)

    def decode(self, value: bytes) -> Any:
        return self._decode(value)

    def write(self, items: Sequence[Any]) -> list[Rejected]:
        if self.fail:
            self.events.append("write_failed")
            raise self.fail.pop(0)
        rejected = []
        for index, item in enumerate(items):
            reason = self.reject(item) if self.reject else None
            if reason:
                rejected.append(Rejected(index, reason, f"refused: {item!r}"))
            else:
                self.written.append(item)
        self.events.append(f"write:{len(items) - len(rejected)}")
        return rejected

    def close(self) -> None:
        self.closed = True


def transient(message: str = "unavailable", retry_after: float | None = None) -> TransientError:
    """A :class:`~pipeline.errors.TransientError` to queue in a double's ``fail`` list."""
    return TransientError(message, retry_after=retry_after)
