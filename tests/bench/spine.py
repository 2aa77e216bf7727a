"""Benchmark stages of the spine: raw topic -> processor -> warehouse, the HTTP path, and a baseline.

All stages run the real components: an embedded Tansu broker on a free port, ``python -m pipeline
process`` and ``python -m pipeline sink warehouse`` (and ``serve-http`` for the HTTP stage) as
subprocesses on a unique topic prefix with a temporary SQLite warehouse. The baseline is a
minimal faust agent (``python -m tests.bench.spine passthrough``) that consumes raw and
produces to another topic exactly as the processor does, only without enrichment.

Stages: ``spine-passthrough`` (baseline), ``spine-raw`` (N records pushed straight into
``feedback.raw``: records/s into the warehouse, latency per stage), ``spine-http`` (an offered load
through ``POST /v1/events``: latency end to end). Each reports the max RSS and CPU of every process.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pipeline.publisher import Publisher
from tests.bench.core import (
    BenchContext,
    Pacer,
    Result,
    latency_results,
    paced,
    percentile,
    split_batches,
    stage,
)
from tests.bench.data import BenchRecord, event_payload, generate, stamp
from tests.bench.rig import HTTP_TOKEN_NAME, Rig, Window, epoch, wait_count, wait_until

TARGET_RATE = 2000.0  # records/s end to end into the warehouse (issue 2)
TARGET_P99 = 2.0  # seconds at 500 records/s offered (issue 2)
TARGET_RSS_MB = 300.0  # per pipeline process (issue 2)
PIPELINE_PROCS = ("http", "processor", "sink", "passthrough")


def rig(ctx: BenchContext) -> Rig:
    def make() -> Rig:
        r = Rig(ctx.workdir, ctx.log, broker_kind=ctx.broker)
        r.processors = ctx.processors
        try:
            r.start_broker()
        except BaseException:
            r.close()
            raise
        return r

    return ctx.shared_resource("spine.rig", make, Rig.close)


def records_for(ctx: BenchContext) -> list[BenchRecord]:
    """The N records of this run (generated once, shared by the baseline and the raw stage)."""
    key = "spine.records"
    if key not in ctx.shared:
        ctx.log(f"[bench] generating {ctx.records:,} records (seed {ctx.seed})")
        ctx.shared[key] = generate(ctx.records, ctx.seed, run=f"r{rig(ctx).run_id}")
    return ctx.shared[key]  # type: ignore[no-any-return]


def produce(pub: Publisher, topic: str, records: list[BenchRecord], chunk: int = 2000) -> float:
    """Publish ``records`` as fast as the broker acks them, stamped when sent; returns the end time."""
    for i in range(0, len(records), chunk):
        pub.publish_bytes(topic, stamp(records[i : i + chunk], datetime.now(UTC)))
    return time.time()


def resource_results(name: str, window: Window, procs: tuple[str, ...]) -> list[Result]:
    out = []
    for proc, usage in sorted(window.usage.items()):
        target = TARGET_RSS_MB if proc in procs or proc.rsplit("-", 1)[0] in procs else None
        notes = "memory-only broker: holds every topic" if proc == "broker" else ""
        out.append(Result(name, f"max RSS {proc}", usage.max_rss / 2**20, "MB", target=target,
                          higher_is_better=False, notes=notes))
    for proc, usage in sorted(window.usage.items()):
        out.append(Result(name, f"CPU {proc}", 100 * usage.cpu_seconds / max(window.wall, 1e-9), "% of a core",
                          notes=f"{usage.cpu_seconds:.1f} CPU s in {window.wall:.1f} s"))
    return out


def worker_names(kind: str, count: int) -> list[str]:
    return [kind] + [f"{kind}-{i}" for i in range(2, count + 1)]


def cpu_per_record(name: str, window: Window, procs: list[str], records: int) -> list[Result]:
    """CPU milliseconds some processes spent per record: a figure other load on the machine barely moves."""
    used = [window.usage[p].cpu_seconds for p in procs if p in window.usage]
    if not used or records <= 0:
        return []
    return [Result(name, f"CPU per record, {procs[0]}" + (f" x{len(procs)}" if len(procs) > 1 else ""),
                   1000 * sum(used) / records, "ms", notes="capacity of one core ≈ 1000 / this records/s")]


# -- baseline ------------------------------------------------------------------------------------------
def passthrough(ctx: BenchContext) -> list[Result]:
    """Measure the baseline once per run (memoized): raw -> faust agent -> topic, no enrichment."""
    if "spine.passthrough" in ctx.shared:
        return ctx.shared["spine.passthrough"]  # type: ignore[no-any-return]
    r = rig(ctx)
    records = records_for(ctx)
    settings, topics = r.topics("pt.")
    names = worker_names("passthrough", r.processors)
    ports = [r.free_port() for _ in names]
    for name, port in zip(names, ports, strict=True):
        r.spawn(name, ["-m", "tests.bench.spine", "passthrough"],
                r.env("pt.", FEEDBACK_PROCESSOR_METRICS_PORT=str(port), FEEDBACK_DATA_DIR=str(r.dir / name)))
    pub = Publisher(settings, client_id="feedback-bench-load", batch_size=262144, linger_ms=10)

    def count() -> float:
        return sum(r.metric(p, "feedback_bench_passthrough_total") for p in ports)

    try:
        pub.publish_bytes(topics.raw, stamp(generate(1, ctx.seed, run=f"w{r.run_id}pt"), datetime.now(UTC)))
        wait_until(lambda: count() >= 1, 120, "the passthrough warm-up", r.check)
        n = len(records)
        r.sampler.begin()
        t0 = time.time()
        produced = produce(pub, topics.raw, records)
        done = wait_count(lambda: count() - 1, n, 60, "passthrough records", r.check)
        last = max(r.metric(p, "feedback_bench_passthrough_last_ack_seconds") for p in ports)
        window = r.sampler.end()
    finally:
        pub.close()
        r.stop(*names)
    rate = done / max(last - t0, 1e-9)
    results = [
        Result("spine-passthrough", "records/s raw -> topic (no enrichment)", rate, "records/s",
               notes=f"{done:,}/{n:,} records; {len(names)} faust worker(s), same batching as the processor"),
        Result("spine-passthrough", "producer records/s into raw", n / (produced - t0), "records/s"),
        *cpu_per_record("spine-passthrough", window, names, done),
        *resource_results("spine-passthrough", window, PIPELINE_PROCS),
    ]
    ctx.shared["spine.passthrough"] = results
    ctx.shared["spine.passthrough_rate"] = rate
    return results


@stage("spine-passthrough")
def passthrough_stage(ctx: BenchContext) -> list[Result]:
    return passthrough(ctx)


# -- raw topic -> warehouse ----------------------------------------------------------------------------
@stage("spine-raw")
def raw_stage(ctx: BenchContext) -> list[Result]:
    """N records pushed into feedback.raw at once; records/s into the warehouse and stage latencies."""
    baseline_rows = [] if "spine.passthrough" in ctx.shared else passthrough(ctx)
    base = ctx.shared["spine.passthrough_rate"]
    r = rig(ctx)
    records = records_for(ctx)
    r.ensure_pipeline()
    settings, topics = r.topics("")
    pub = Publisher(settings, client_id="feedback-bench-load", batch_size=262144, linger_ms=10)
    n = len(records)
    run = f"r{r.run_id}-"
    try:
        r.sampler.begin()
        t0 = time.time()
        produced = produce(pub, topics.raw, records)
        ctx.log(f"[bench] spine-raw: {n:,} records in feedback.raw after {produced - t0:.1f} s")
        done = wait_count(lambda: r.count(run), n, 90, "rows in the warehouse", r.check)
        ctx.log(f"[bench] spine-raw: {done:,} rows in the warehouse after {time.time() - t0:.1f} s")
        # The CPU window ends when the processors are idle: work they deferred behind the backlog (the
        # signal windows) belongs to these records too.
        idle = r.wait_idle(worker_names("processor", r.processors))
        window = r.sampler.end()
        ctx.log(f"[bench] spine-raw: processors idle {idle:.0f} s after the last row")
    finally:
        pub.close()
    rows = r.rows(run)
    enriched = r.enriched_times(topics.enriched, {key for key, *_ in rows})  # the stored rows' ids
    last_written = max((epoch(w) for _, _, _, w in rows), default=t0)
    last_enriched = max(enriched.values(), default=t0)
    stage1, stage2, e2e = split_latencies(rows, enriched)
    note = "all N produced at once: latency includes the backlog"
    results = [
        *baseline_rows,
        Result("spine-raw", "records/s end to end into the warehouse", done / max(last_written - t0, 1e-9),
               "records/s", baseline=base, baseline_name="passthrough", target=TARGET_RATE,
               notes=f"{done:,}/{n:,} rows"),
        Result("spine-raw", "records/s raw -> enriched", len(enriched) / max(last_enriched - t0, 1e-9),
               "records/s", baseline=base, baseline_name="passthrough"),
        Result("spine-raw", "producer records/s into raw", n / max(produced - t0, 1e-9), "records/s"),
        *latency_results("spine-raw", "latency raw -> enriched", stage1, note),
        *latency_results("spine-raw", "latency enriched -> written", stage2, note),
        *latency_results("spine-raw", "latency end to end", e2e, note),
        *cpu_per_record("spine-raw", window, worker_names("processor", r.processors), done),
        *cpu_per_record("spine-raw", window, ["sink"], done),
        *resource_results("spine-raw", window, PIPELINE_PROCS),
    ]
    return results


def split_latencies(rows: list[tuple[bytes, Any, Any, Any]], enriched: dict[bytes, float]
                    ) -> tuple[list[float], list[float], list[float]]:
    """Per row: received -> enriched (topic timestamp, else processed_at), enriched -> written, total."""
    stage1, stage2, e2e = [], [], []
    for key, received, processed, written in rows:
        rec, wrt = epoch(received), epoch(written)
        mid = enriched.get(key, epoch(processed))
        stage1.append(mid - rec)
        stage2.append(wrt - mid)
        e2e.append(wrt - rec)
    return stage1, stage2, e2e


# -- HTTP at an offered load ---------------------------------------------------------------------------
async def offered_load(url: str, records: list[BenchRecord], rate: float, batch: int, connections: int = 256,
                       headers: dict[str, str] | None = None) -> list[tuple[float, float, float, int, int]]:
    """POST ``records`` to /v1/events at ``rate`` records/s (open loop, ``batch`` per request).

    Returns per request: (scheduled, sent, answered) as wall-clock times, HTTP status, records.
    The client is aiohttp: httpx cost 4-7 ms of CPU per request here and became the bottleneck.
    """
    import aiohttp

    sizes = split_batches(len(records), batch)
    groups, i = [], 0
    for size in sizes:
        groups.append(records[i : i + size])
        i += size
    loop = asyncio.get_running_loop()
    to_wall = time.time() - loop.time()
    pacer = Pacer(rate / batch, loop.time() + 0.2)
    out: list[tuple[float, float, float, int, int]] = []
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60)

    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, headers=headers) as session:
        async def send(k: int) -> None:
            now = datetime.now(UTC)
            items = [event_payload(rec, now) for rec in groups[k]]
            sent = loop.time()
            try:
                async with session.post("/v1/events", json=items if batch > 1 else items[0]) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            out.append((pacer.due(k) + to_wall, sent + to_wall, loop.time() + to_wall, status, len(items)))

        tasks = [asyncio.create_task(send(k)) async for k in paced(pacer, len(groups), loop.time, asyncio.sleep)]
        await asyncio.gather(*tasks)
    return out


@stage("spine-http")
def http_stage(ctx: BenchContext) -> list[Result]:
    """An offered load through POST /v1/events; latency received_at -> written_at against 2 s p99."""
    r = rig(ctx)
    r.ensure_pipeline(http=True)
    total = max(1, int(ctx.http_rate * ctx.http_seconds))
    records = generate(total, ctx.seed + 1, run=f"h{r.run_id}")
    run = f"{HTTP_TOKEN_NAME}:h{r.run_id}-"  # the service prefixes source_ref with the token's name
    r.sampler.begin()
    started = time.time()
    answers = asyncio.run(offered_load(r.http_url, records, ctx.http_rate, ctx.http_batch, headers=r.http_headers))
    sent_for = time.time() - started
    accepted = sum(n for *_, status, n in answers if status == 202)
    done = wait_count(lambda: r.count(run), accepted, 60, "HTTP rows in the warehouse", r.check)
    window = r.sampler.end()
    rows = r.rows(run)
    _settings, topics = r.topics("")
    enriched = r.enriched_times(topics.enriched, {key for key, *_ in rows})  # ids from the stored source_ref
    stage1, stage2, e2e = split_latencies(rows, enriched)
    first_sched = min(a[0] for a in answers)
    offered = sum(a[4] for a in answers) / max(max(a[0] for a in answers) - first_sched, 1e-9)
    received = sorted(epoch(rec) for _, rec, _, _ in rows)
    arrival = len(received) / max(received[-1] - received[0], 1e-9) if len(received) > 1 else math.nan
    client = [done_ - sent for _, sent, done_, _, _ in answers]
    lag = [sent - sched for sched, sent, *_ in answers]
    desc = f"{ctx.http_rate:g} records/s offered for {ctx.http_seconds:g} s, {ctx.http_batch} per request"
    return [
        Result("spine-http", "offered records/s (achieved schedule)", offered, "records/s",
               notes=f"{desc}; sending took {sent_for:.1f} s; sender lag p99 {1000 * _p99(lag):.0f} ms"),
        Result("spine-http", "records/s arriving at the service (received_at)", arrival, "records/s",
               notes="below the offered rate when the service or the load generator cannot keep up"),
        Result("spine-http", "records accepted (202)", accepted, "records",
               notes=f"{total - accepted:,} refused or failed; {done:,} rows written; requests by status: "
                     + ", ".join(f"{k or 'none'}: {v}" for k, v in sorted(Counter(a[3] for a in answers).items()))),
        *latency_results("spine-http", "latency end to end (received -> written)", e2e, desc,
                         p99_target=TARGET_P99),
        *latency_results("spine-http", "latency received -> enriched", stage1),
        *latency_results("spine-http", "latency enriched -> written", stage2),
        *latency_results("spine-http", "HTTP request (202 after broker ack)", client),
        *resource_results("spine-http", window, PIPELINE_PROCS),
    ]


def _p99(values: list[float]) -> float:
    return percentile(values, 99)


# -- the baseline agent (runs in its own process) ------------------------------------------------------
def passthrough_main() -> None:
    """A faust agent: raw -> enriched topic of the ``FEEDBACK_TOPIC_PREFIX``, bytes untouched."""
    import sys

    import faust
    from prometheus_client import Counter, Gauge

    from pipeline import metrics
    from pipeline.config import ProcessorSettings, load
    from pipeline.topics import Topics
    from processors.app import throughput_options

    settings = load(ProcessorSettings)
    topics = Topics.from_settings(settings)
    passed = Counter("feedback_bench_passthrough", "Records passed through (broker-acked).")
    last_ack = Gauge("feedback_bench_passthrough_last_ack_seconds", "Unix time of the last acked batch.")
    app = faust.App(
        settings.topic_prefix + "feedback-bench-passthrough",
        broker=f"kafka://{settings.bootstrap}", broker_session_timeout=6, broker_heartbeat_interval=1,
        producer_acks=-1, topic_partitions=settings.topic_partitions, value_serializer="raw",
        key_serializer="raw", web_enabled=False, store="memory://",
        datadir=str(settings.data_dir / "faust-passthrough"), **throughput_options(settings),
    )
    src = app.topic(topics.raw, key_type=bytes, value_type=bytes, value_serializer="raw",
                    key_serializer="raw", partitions=settings.topic_partitions)
    name = topics.enriched

    @app.agent(src)
    async def forward(stream: Any) -> None:
        async for batch in stream.take_events(settings.processor_batch, within=0.05):
            # straight to the producer, as the processor sends
            futures = [await app.producer.send(name, e.key, e.value, None, None, None) for e in batch]
            await asyncio.gather(*futures)
            passed.inc(len(batch))
            last_ack.set(time.time())

    metrics.serve(settings.processor_metrics_port)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # as processors.app.run_worker does
    sys.setswitchinterval(0.001)  # likewise
    worker.execute_from_commandline()


if __name__ == "__main__":  # pragma: no cover - the baseline process
    import sys

    if sys.argv[1:] == ["passthrough"]:
        passthrough_main()
    else:
        sys.exit("usage: python -m tests.bench.spine passthrough")
