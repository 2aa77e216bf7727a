"""SharedIdReads: every caller gets a read that started after its moment, and concurrent callers share reads."""

from __future__ import annotations

import asyncio
import threading
import time

from pipeline.async_publisher import SharedIdReads


class CountingWatch:
    """Stands in for TopicWatch: each read takes 5 ms and returns a new generation number as the id."""

    def __init__(self) -> None:
        self.reads: list[float] = []
        self.names: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, topic: str) -> None:
        self.names = tuple(dict.fromkeys((*self.names, topic)))

    def ids(self) -> dict[str, str | None]:
        with self._lock:
            started = time.monotonic()
            self.reads.append(started)
            generation = len(self.reads)
        time.sleep(0.005)
        return {"raw": f"gen-{generation}@{started}"}


def test_each_caller_gets_a_read_started_after_its_moment_and_callers_share_reads() -> None:
    async def scenario() -> tuple[CountingWatch, list[tuple[float, str]]]:
        watch = CountingWatch()
        reads = SharedIdReads(watch)  # type: ignore[arg-type]

        async def caller(delay: float) -> tuple[float, str]:
            await asyncio.sleep(delay)
            moment = time.monotonic()
            got = await reads.read_since(moment, "raw")
            return moment, str(got["raw"])

        results = await asyncio.gather(*(caller(i * 0.001) for i in range(200)))
        return watch, list(results)

    watch, results = asyncio.run(scenario())
    for moment, got in results:
        started = float(got.split("@")[1])
        assert started >= moment, "a read that started before the caller's acks confirms nothing"
    # 200 callers over ~0.2 s, one 5 ms read at a time: a read serves many callers, never overlapping another
    assert 2 <= len(watch.reads) <= 60, len(watch.reads)
    gaps = [b - a for a, b in zip(watch.reads, watch.reads[1:], strict=False)]
    assert all(g >= 0.004 for g in gaps), gaps
    assert watch.names == ("raw",)
