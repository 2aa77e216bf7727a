"""The source contract and the source runner: outside input -> ``feedback.raw``, cursor after the acks.

A **polling source** says only what is particular to it: how to read one page of outside input
(:meth:`PollingSource.next_batch`) into a :class:`Batch` of records, dead letters, skipped counts and
the cursors that page advances to. The :class:`SourceRunner` owns everything else: the loop, the
publishing, waiting for the broker's acknowledgements, saving the cursors in the state store
(:mod:`pipeline.state`), backoff honouring ``Retry-After``, stopping, health and metrics.

Guarantees of :class:`SourceRunner`:

- a batch's cursors are saved only after the broker acknowledged every record and every dead letter
  of the batch (and after the source's :meth:`~PollingSource.acknowledged` hook ran), so a crash at
  any point re-reads at most the batch in flight, whose records carry the same deterministic ids
  (nothing lost, nothing counted twice downstream);
- a :class:`~pipeline.errors.TransientError` (or an exception of a type the source lists in
  ``retry_on``) closes the source, waits ``RetryPolicy`` backoff but never less than the error's
  ``retry_after``, opens the source again and resumes from the saved cursors;
- a :class:`~pipeline.errors.ConfigError` (and any other exception) stops the runner and is raised
  to the caller (the CLI exits 2 for a ConfigError);
- :meth:`SourceRunner.stop` ends the loop after the batch in hand (its cursors saved if it was
  acknowledged) or during a wait, at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge

from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.retry import RetryPolicy
from pipeline.schema import DeadLetter, FeedbackRecord
from pipeline.state import Cursor, StateStore

log = get_logger(__name__)

SOURCE_ITEMS = PromCounter("feedback_source_items_total",
                           "Items of polling sources, by outcome (published, dead_lettered, skipped_<reason>).",
                           ["source", "outcome"])
SOURCE_RETRIES = PromCounter("feedback_source_retries_total",
                             "Interruptions of a polling source (retried from its saved cursor).", ["source", "kind"])
SOURCE_CURSOR_SAVED = Gauge("feedback_source_cursor_saved_timestamp_seconds",
                            "When a polling source last saved its cursor (after the broker's acks).", ["source"])


@dataclass
class Batch:
    """One page of outside input, mapped. ``cursors``: state-store key -> value to save once the batch
    is acknowledged (empty: nothing advances). ``idle``: the source has nothing more for now (the
    runner calls :meth:`PollingSource.wait` before the next batch). ``context``: anything the source
    wants back in :meth:`PollingSource.acknowledged` (e.g. the message ids to flag)."""

    records: list[FeedbackRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    idle: bool = False
    context: Any = None


class Publisher(Protocol):
    """What the runner needs of a publisher: both calls return only after the broker's acks."""

    def publish(self, records: Sequence[FeedbackRecord], timeout: float = ...) -> None: ...

    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = ...) -> None: ...


class StateView:
    """A source's read-only view of its own cursors in the state store."""

    def __init__(self, store: StateStore, namespace: str) -> None:
        self.store, self.namespace = store, namespace

    def get(self, key: str = "cursor") -> Cursor | None:
        return self.store.get(self.namespace, key)


class PollingSource:
    """Base of polling sources. Subclasses set ``name`` (metrics label) and ``namespace`` (their cursors'
    namespace in the state store) and implement :meth:`next_batch`; the other hooks are optional.

    Contract: :meth:`next_batch` reads one page after the cursors the state view holds and returns it
    without publishing anything; it raises TransientError (or a ``retry_on`` type) for failures that
    may pass and ConfigError for those that will not. It is called only between :meth:`open` and
    :meth:`close`; after a failure the runner closes the source and opens it again.
    """

    name: str = "source"
    namespace: str = "source"
    retry_on: ClassVar[tuple[type[BaseException], ...]] = ()
    poll_interval: float = 30.0

    def open(self, state: StateView) -> None:
        self.state = state

    def next_batch(self) -> Batch:
        raise NotImplementedError

    def acknowledged(self, batch: Batch) -> None:
        """Called after the broker acknowledged the batch and before its cursors are saved."""

    def saved(self, batch: Batch) -> None:
        """Called after the batch's cursors were saved (metrics, logs)."""

    def interrupted(self, exc: Exception) -> None:
        """Called when a retriable error interrupted the source (its own metrics, before the backoff)."""

    def wait(self, stop: threading.Event) -> None:
        """Wait until there may be new input (default: the poll interval) or until stopped."""
        stop.wait(self.poll_interval)

    def close(self) -> None:
        """Release connections; :meth:`open` may be called again afterwards."""


@dataclass
class SourceHealth:
    """What the runner reports about its source (``/readyz``, logs, tests)."""

    running: bool = False
    batches: int = 0
    records: int = 0
    dead_letters: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_saved_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.running and self.consecutive_failures == 0


class SourceRunner:
    """Runs one :class:`PollingSource` until stopped (guarantees: see the module docstring).

    ``publisher`` and ``store`` may be given as zero-argument callables: they are then made when the
    source is first opened, inside the retry loop (a broker or database that is not up yet is waited
    for like any other transient failure).
    """

    def __init__(self, source: PollingSource, publisher: Publisher | Callable[[], Publisher],
                 store: StateStore | Callable[[], StateStore], retry: RetryPolicy | None = None,
                 once: bool = False) -> None:
        self.source = source
        self._make_publisher, self._make_store = publisher, store
        self._publisher: Publisher | None = None if callable(publisher) else publisher
        self._store: StateStore | None = None if callable(store) else store
        self.retry = retry or RetryPolicy(first=0.5, maximum=30.0, jitter=0.2)
        self.once = once  # stop at the first idle batch (``--once``)
        self.health = SourceHealth()
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            self._publisher = self._make_publisher()  # type: ignore[operator]
        return self._publisher

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = self._make_store()  # type: ignore[operator]
        return self._store

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped (for sources that wait inside a batch)."""
        return self._stop.wait(seconds)

    def run(self) -> int:
        """Run until :meth:`stop` (or, with ``once``, the first idle batch); returns batches saved."""
        backoff = self.retry.backoff()
        self.health.running = True
        opened = False
        try:
            while not self._stop.is_set():
                try:
                    if not opened:
                        store, _ = self.store, self.publisher  # made here when given as factories
                        self.source.open(StateView(store, self.source.namespace))
                        opened = True
                    batch = self.source.next_batch()
                    self.deliver(batch)
                    backoff.reset()
                    self.health.consecutive_failures, self.health.last_error = 0, None
                    if batch.idle and self.once:
                        break
                    if batch.idle:
                        self.source.wait(self._stop)  # a source may wait on its connection (IMAP IDLE)
                except Exception as exc:
                    if not self._retriable(exc):
                        raise
                    opened = self._close(opened)
                    self._pause(exc, backoff)
        finally:
            self.health.running = False
            self._close(opened)
        return self.health.batches

    def _retriable(self, exc: Exception) -> bool:
        return isinstance(exc, (TransientError, *self.source.retry_on))

    def _close(self, opened: bool) -> bool:
        if opened:
            try:
                self.source.close()
            except Exception as exc:  # a broken connection may fail to close; it is dropped anyway
                log.debug("source close failed", source=self.source.name, error=str(exc))
        return False

    def _pause(self, exc: Exception, backoff: Any) -> None:
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        delay = backoff.next(retry_after)
        kind = "transient" if isinstance(exc, TransientError) else type(exc).__name__
        self.source.interrupted(exc)
        self.health.consecutive_failures += 1
        self.health.last_error = f"{type(exc).__name__}: {exc}"[:500]
        SOURCE_RETRIES.labels(self.source.name, kind).inc()
        log.warning("source interrupted; retrying from the saved cursor", source=self.source.name,
                    error=self.health.last_error[:300], retry_in=round(delay, 2))
        self._stop.wait(delay)

    def deliver(self, batch: Batch) -> None:
        """Publish (acks awaited), let the source finish the batch, then save its cursors."""
        if batch.records:
            self.publisher.publish(batch.records)
        if batch.dead_letters:
            self.publisher.dead_letter(batch.dead_letters)
        self.source.acknowledged(batch)
        if batch.cursors:
            self.store.save(self.source.namespace, batch.cursors)
            self.health.last_saved_at = time.time()
            SOURCE_CURSOR_SAVED.labels(self.source.name).set(self.health.last_saved_at)
        self.health.batches += 1
        self.health.records += len(batch.records)
        self.health.dead_letters += len(batch.dead_letters)
        name = self.source.name
        SOURCE_ITEMS.labels(name, "published").inc(len(batch.records))
        SOURCE_ITEMS.labels(name, "dead_lettered").inc(len(batch.dead_letters))
        for reason, count in batch.skipped.items():
            SOURCE_ITEMS.labels(name, f"skipped_{reason}").inc(count)
        self.source.saved(batch)

