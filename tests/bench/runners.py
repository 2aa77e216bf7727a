"""The kernel runners' own cost per record, against the same work without them (same run).

``python -m tests.bench.runners [N]``: N enriched records (default 100,000) as JSON.

- sink: ``SinkRunner.handle`` over a ``ListInput`` into a ``ListSink`` that decodes with
  ``EnrichedFeedback.model_validate_json`` and keeps the items, against a plain loop doing the same
  decode and append (the baseline); batches of 1,000 as the warehouse sink's default.
- source: ``SourceRunner.deliver`` of 1,000-record batches into a ``MemoryPublisher`` and a
  ``MemoryStateStore``, against appending the same records to a list and saving the cursor dict.

Prints the best of 3 runs of each, in records per second, and the runner's overhead per record.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from pipeline.sink_runner import SinkRunner
from pipeline.sources import Batch, PollingSource, SourceRunner
from pipeline.state import MemoryStateStore
from pipeline.testing import ListInput, ListSink, MemoryPublisher

BATCH = 1000


def records(n: int) -> list[EnrichedFeedback]:
    return [EnrichedFeedback(source_ref=f"bench-{i}", text=f"the delivery was late again ({i})", nps_score=i % 11,
                             sentiment=Sentiment(polarity=-0.3, subjectivity=0.6, label="negative"),
                             categories=[CategoryTag(name="delivery", confidence=0.7)]) for i in range(n)]


def best(fn: Callable[[], None], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def sink_case(values: list[bytes]) -> tuple[float, float]:
    def baseline() -> None:
        kept = []
        for start in range(0, len(values), BATCH):
            kept.extend(EnrichedFeedback.model_validate_json(v) for v in values[start:start + BATCH])

    def runner() -> None:
        sink = ListSink(decode=EnrichedFeedback.model_validate_json)
        sink_runner = SinkRunner(sink, lambda: source, MemoryPublisher(), batch_size=BATCH)
        source = ListInput(values)
        sink_runner.input = source
        for _ in range(0, len(values), BATCH):
            sink_runner.handle(source.poll(0, BATCH))

    return best(baseline), best(runner)


def source_case(items: list[EnrichedFeedback]) -> tuple[float, float]:
    batches = [Batch(records=list(items[s:s + BATCH]), cursors={"cursor": {"n": s}})
               for s in range(0, len(items), BATCH)]

    def baseline() -> None:
        published: list[object] = []
        state: dict[str, object] = {}
        for batch in batches:
            published.extend(batch.records)
            state.update(batch.cursors)

    def runner() -> None:
        source = PollingSource()
        source_runner = SourceRunner(source, MemoryPublisher(), MemoryStateStore())
        for batch in batches:
            source_runner.deliver(batch)

    return best(baseline), best(runner)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    items = records(n)
    values = [i.model_dump_json().encode() for i in items]
    for name, (base, run) in (("sink", sink_case(values)), ("source", source_case(items))):
        print(f"{name}: baseline {n / base:,.0f} records/s, runner {n / run:,.0f} records/s, "
              f"overhead {(run - base) / n * 1e6:.2f} us/record ({n:,} records, batches of {BATCH}, best of 3)")


if __name__ == "__main__":
    main()
