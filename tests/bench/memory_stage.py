"""Processor memory over a long backlog (issue 21): RSS against records processed, and whether it levels off.

Runs ONLY the processor (``python -m pipeline process``, wrapped by ``worker`` below so that it also
reports allocator numbers) against an embedded broker of :class:`~tests.bench.rig.Rig`, pushes N bench
records into ``feedback.raw`` in chunks while keeping a bounded backlog ahead of the processor, and
every ``--interval`` seconds samples the processor's RSS, ``/proc/PID/smaps_rollup``, its threads, and
Python and glibc numbers read inside the worker (no tracemalloc): pymalloc blocks, gc-tracked objects,
glibc ``mallinfo2`` and the number of malloc arenas. After the run it asks the worker for a
``malloc_trim(0)``: memory that comes back then was free memory the allocator kept, not live objects.

    .venv/bin/python -m tests.bench.memory_stage --records 200000 [--broker kafka|tansu]
        [--env MALLOC_ARENA_MAX=2 ...] [--faust stream_buffer_maxsize=1024 ...] [--json FILE]

``--env`` goes into the processor's environment; ``--faust`` adds faust App settings (``processors/app.py``
is not changed: the worker wraps ``faust.App``). The slope that matters is the one after the dedupe
memory is full (``FEEDBACK_DEDUPE_WINDOW``, 100,000 ids): printed as MB per 100,000 records.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONTROL_ENV = "FEEDBACK_BENCH_MEMORY_CONTROL"  # the worker's control file prefix (trim trigger, dumps)
FAUST_ENV = "FEEDBACK_BENCH_MEMORY_FAUST"  # JSON object of extra faust App settings
INTERVAL_ENV = "FEEDBACK_BENCH_MEMORY_INTERVAL"  # seconds between the worker's probes
PROBE = "feedback_bench_mem_"
PROBE_KEYS = ("py_blocks", "gc_objects", "malloc_inuse", "malloc_free", "malloc_mmapped", "malloc_arenas",
              "dedupe_ids", "window_ids", "window_bytes", "open_windows")
HANDLED = ("feedback_processed_total", "feedback_duplicates_total", "feedback_dead_lettered_total")
SMAPS_KEYS = ("Rss", "Pss", "Anonymous", "Private_Dirty", "Shared_Clean", "Swap")


# -- pure helpers --------------------------------------------------------------------------------------
def parse_assignments(items: list[str], what: str = "--env") -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``; an item without ``=`` is an error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} wants KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def faust_values(raw: dict[str, str]) -> dict[str, Any]:
    """faust settings from text: integers and floats as numbers, the rest as text."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The kB fields of ``/proc/PID/smaps_rollup`` (``Rss``, ``Anonymous``, ...) in bytes."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s+(\d+) kB", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * 1024
    return out


def count_arenas(malloc_info_xml: str) -> int:
    """Number of glibc malloc arenas (``<heap nr=...>``) in a ``malloc_info`` document."""
    return len(re.findall(r"<heap nr=", malloc_info_xml))


def slope_per(points: list[tuple[float, float]], per: float = 100_000.0) -> float | None:
    """Least-squares slope of y over x, times ``per`` (MB per 100,000 records); None below 2 points."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return per * sum((x - mx) * (y - my) for x, y in points) / sxx


COLUMNS = (("t_s", "t s", "{:.0f}"), ("processed", "records", "{:,.0f}"), ("rss_mb", "RSS MB", "{:.1f}"),
           ("anon_mb", "anon MB", "{:.1f}"), ("threads", "thr", "{:.0f}"), ("py_blocks_k", "pyblk k", "{:.0f}"),
           ("gc_objects_k", "gcobj k", "{:.0f}"), ("malloc_inuse_mb", "malloc used", "{:.1f}"),
           ("malloc_free_mb", "malloc free", "{:.1f}"), ("arenas", "arenas", "{:.0f}"),
           ("dedupe_k", "dedupe k", "{:.0f}"), ("window_ids_k", "win ids k", "{:.0f}"),
           ("window_mb", "win MB", "{:.1f}"), ("backlog", "backlog", "{:,.0f}"), ("load1", "load", "{:.1f}"),
           ("broker_rss_mb", "broker MB", "{:.0f}"),
           ("note", "", "{}"))


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of samples (missing values as ``-``)."""
    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        return ("" if key == "note" else "-") if value is None else fmt.format(value)

    table = [[head for _, head, _ in COLUMNS]] + [[cell(r, k, f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in table)


# -- inside the processor ------------------------------------------------------------------------------
def _libc() -> Any:
    return ctypes.CDLL("libc.so.6")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def malloc_numbers() -> dict[str, float]:
    """glibc's view over all arenas: bytes in use, free bytes kept, mmapped bytes, and the arena count."""
    libc = _libc()
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as tmp:
        libc.fopen.restype = ctypes.c_void_p
        fp = libc.fopen(tmp.name.encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        arenas = count_arenas(Path(tmp.name).read_text())
    return {"malloc_inuse": float(info.uordblks + info.hblkhd), "malloc_free": float(info.fordblks),
            "malloc_mmapped": float(info.hblkhd), "malloc_arenas": float(arenas)}


_PROBES: dict[str, float] = {}  # the latest probe values, refreshed by the control thread


_HELD: dict[str, Any] = {}  # the processor's bounded memories, caught while its app is built (see worker_main)


def held_numbers() -> dict[str, float]:
    """Ids in the dedupe memory and in the open signal windows, and the windows' digest bytes (estimate)."""
    out = {}
    recent = _HELD.get("recent")
    if recent is not None:
        out["dedupe_ids"] = float(len(recent._items))
    runner = _HELD.get("runner")
    agg = getattr(runner, "agg", None)
    if agg is not None:
        wins = list(agg.open.values())
        out["window_ids"] = float(sum(len(w.ids) for w in wins))
        out["window_bytes"] = float(sum(len(w.ids._sorted) * 8 + sys.getsizeof(w.ids._recent) + 32 * len(w.ids._recent)
                                        for w in wins))
        out["open_windows"] = float(len(wins))
    return out


def probe_values() -> dict[str, float]:
    """Python- and glibc-level numbers of this process (a full gc walk: a few tens of ms)."""
    return {"py_blocks": float(sys.getallocatedblocks()), "gc_objects": float(len(gc.get_objects())),
            **malloc_numbers(), **held_numbers()}


def _probe_gauges() -> None:
    from prometheus_client import Gauge

    def reader(key: str) -> Any:
        return lambda: _PROBES.get(key, float("nan"))

    for key in PROBE_KEYS:
        Gauge(PROBE + key, f"{key} of this process (bench probe)").set_function(reader(key))


def _control_loop(prefix: str, interval: float) -> None:
    """Refresh the probes every ``interval`` s; ``<prefix>.trim`` -> gc, malloc_trim(0), then
    ``<prefix>.types.json`` (gc-tracked objects by type)."""
    trigger = Path(prefix + ".trim")
    next_probe = 0.0
    while True:
        time.sleep(0.5)
        if time.monotonic() >= next_probe:
            _PROBES.update(probe_values())
            next_probe = time.monotonic() + interval
        if not trigger.exists():
            continue
        types = Counter(type(o).__name__ for o in gc.get_objects()).most_common(40)
        gc.collect()
        trimmed = _libc().malloc_trim(0)
        _PROBES.update(probe_values())
        Path(prefix + ".types.json").write_text(json.dumps({"types": types, "trimmed": trimmed}))
        trigger.unlink()


def _catch_held() -> None:
    """Keep references to the processor's dedupe memory and signal-windows runner (read by the probes)."""
    import processors.app as app_module
    import processors.signals as signals_module

    base, register = app_module.RecentSet, signals_module.register

    class RecentSet(base):  # type: ignore[misc, valid-type]
        def __init__(self, capacity: int) -> None:
            super().__init__(capacity)
            _HELD["recent"] = self

    def caught(*args: Any, **kwargs: Any) -> Any:
        _HELD["runner"] = register(*args, **kwargs)
        return _HELD["runner"]

    app_module.RecentSet = RecentSet  # type: ignore[misc]
    signals_module.register = caught


def worker_main() -> None:
    """``python -m pipeline process`` with the probes above (and extra faust settings, if any)."""
    import faust

    extra = json.loads(os.environ.get(FAUST_ENV) or "{}")
    if extra:
        base = faust.App

        class App(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, **extra})

        faust.App = App  # type: ignore[misc]
    _catch_held()
    _probe_gauges()
    prefix = os.environ.get(CONTROL_ENV)
    if prefix:
        interval = float(os.environ.get(INTERVAL_ENV) or 5)
        threading.Thread(target=_control_loop, args=(prefix, interval), name="bench-memory-control",
                         daemon=True).start()
    from pipeline.cli import main

    sys.argv = ["pipeline", "process"]
    main()


# -- the bench side ------------------------------------------------------------------------------------
def sample(rig: Any, port: int, t0: float, published: int) -> dict[str, Any]:
    """One row: the processor's memory, threads and probes, records processed, the machine's load."""
    import httpx
    import psutil
    from prometheus_client.parser import text_string_to_metric_families

    proc = psutil.Process(rig.procs["processor"].pid)
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    except httpx.HTTPError:
        body = ""
    values: dict[str, float] = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            values[s.name] = values.get(s.name, 0.0) + s.value
    smaps = parse_smaps_rollup(Path(f"/proc/{proc.pid}/smaps_rollup").read_text())
    processed = sum(values.get(name, 0.0) for name in HANDLED)
    mb = 2.0**20
    broker = rig.procs.get("broker")
    return {
        "t_s": time.monotonic() - t0, "processed": processed, "backlog": published - processed,
        "rss_mb": proc.memory_info().rss / mb, "anon_mb": smaps.get("Anonymous", 0) / mb,
        "smaps": {k: smaps.get(k) for k in SMAPS_KEYS}, "threads": proc.num_threads(),
        "py_blocks_k": values.get(PROBE + "py_blocks", 0.0) / 1000,
        "gc_objects_k": values.get(PROBE + "gc_objects", 0.0) / 1000,
        "malloc_inuse_mb": values.get(PROBE + "malloc_inuse", 0.0) / mb,
        "malloc_free_mb": values.get(PROBE + "malloc_free", 0.0) / mb,
        "malloc_mmapped_mb": values.get(PROBE + "malloc_mmapped", 0.0) / mb,
        "arenas": values.get(PROBE + "malloc_arenas"),
        "dedupe_k": values.get(PROBE + "dedupe_ids", 0.0) / 1000,
        "window_ids_k": values.get(PROBE + "window_ids", 0.0) / 1000,
        "window_mb": values.get(PROBE + "window_bytes", 0.0) / mb, "open_windows": values.get(PROBE + "open_windows"),
        "load1": os.getloadavg()[0],
        "broker_rss_mb": psutil.Process(broker.pid).memory_info().rss / mb if broker and broker.poll() is None
        else None,
    }


def run(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    from pipeline.publisher import Publisher
    from tests.bench.data import generate, stamp
    from tests.bench.rig import Rig, wait_until

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="feedback-memory-"))
    rig = Rig(workdir, log, broker_kind=args.broker)
    rows: list[dict[str, Any]] = []
    # --backlog at or above --records: everything is pushed at once, and the generator (pydantic records,
    # ~1 ms each) would be slower than the processor on a loaded machine; so the records are made first.
    try:
        ready = [generate(min(args.chunk, args.records - i), k, run=f"m{rig.run_id}c{k}")
                 for k, i in enumerate(range(0, args.records, args.chunk))] if args.backlog >= args.records else []
        rig.start_broker()
        settings, topics = rig.topics("")
        control = str(rig.dir / "memory-control")
        env = rig.env("", **parse_assignments(args.env), **{CONTROL_ENV: control, INTERVAL_ENV: str(args.interval / 2)},
                      **{FAUST_ENV: json.dumps(faust_values(parse_assignments(args.faust, "--faust")))})
        rig.spawn("processor", ["-m", "tests.bench.memory_stage", "worker"], env)
        port = rig.ports["processor"]
        pub = Publisher(settings, client_id="feedback-bench-memory", batch_size=262144, linger_ms=10)
        def processed() -> float:  # every record handled: enriched, dropped as a re-delivery, or dead-lettered
            return sum(rig.metric(port, name) for name in HANDLED)

        pub.publish_bytes(topics.raw, stamp(generate(1, 0, run=f"w{rig.run_id}"), datetime.now(UTC)))
        wait_until(lambda: processed() >= 1, 300, "the warm-up record", rig.check)
        t0 = time.monotonic()
        rows.append(sample(rig, port, t0, 1))
        log(format_table(rows))
        published, chunk, next_sample = 1, 0, t0 + args.interval
        last_progress, last_done = time.monotonic(), 1.0
        while True:
            rig.check()
            done = processed()
            if done > last_done:
                last_progress, last_done = time.monotonic(), done
            if done >= args.records + 1 or time.monotonic() - last_progress > args.stall:
                break
            if time.monotonic() >= next_sample:
                rows.append(sample(rig, port, t0, published))
                log(format_table(rows[-1:]).splitlines()[-1])
                next_sample = time.monotonic() + args.interval
            if published < args.records + 1 and published - done < args.backlog:
                n = min(args.chunk, args.records + 1 - published)
                batch = ready.pop(0) if ready else generate(n, chunk, run=f"m{rig.run_id}c{chunk}")
                pub.publish_bytes(topics.raw, stamp(batch, datetime.now(UTC)))
                published, chunk = published + n, chunk + 1
                continue
            time.sleep(1.0)
        pub.close()
        rig.wait_idle(["processor"], timeout=120)
        rows.append({**sample(rig, port, t0, published), "note": "idle"})
        Path(control + ".trim").write_text("1")
        wait_until(lambda: not Path(control + ".trim").exists(), 120, "malloc_trim in the worker", rig.check)
        time.sleep(2)
        rows.append({**sample(rig, port, t0, published), "note": "after gc + malloc_trim(0)"})
        types = json.loads(Path(control + ".types.json").read_text())
    finally:
        rig.close()
    return summarise(args, rows, types)


def summarise(args: argparse.Namespace, rows: list[dict[str, Any]], types: dict[str, Any]) -> dict[str, Any]:
    live = [r for r in rows if "note" not in r]
    after = [(r["processed"], r["rss_mb"]) for r in live if r["processed"] >= 100_000]
    return {
        "records": args.records, "broker": args.broker, "env": args.env, "faust": args.faust,
        "cpus": os.cpu_count(), "rows": rows, "gc_types_at_end": types,
        "rss_slope_mb_per_100k_after_100k": slope_per(after),
        "rss_slope_mb_per_100k_all": slope_per([(r["processed"], r["rss_mb"]) for r in live]),
        "anon_slope_mb_per_100k_after_100k": slope_per(
            [(r["processed"], r["anon_mb"]) for r in live if r["processed"] >= 100_000]),
        "malloc_inuse_slope_after_100k": slope_per(
            [(r["processed"], r["malloc_inuse_mb"]) for r in live if r["processed"] >= 100_000]),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        worker_main()
        return
    ap = argparse.ArgumentParser(prog="python -m tests.bench.memory_stage", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--broker", choices=("tansu", "kafka"), default="kafka")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="processor environment")
    ap.add_argument("--faust", action="append", default=[], metavar="SETTING=VALUE", help="extra faust setting")
    ap.add_argument("--chunk", type=int, default=2000, help="records per publish")
    ap.add_argument("--backlog", type=int, default=30_000, help="most records published ahead of the processor")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--stall", type=float, default=180.0, help="give up after this long without progress")
    ap.add_argument("--workdir", help="where the logs are kept (default: a temp folder)")
    ap.add_argument("--json", help="write every sample and the slopes to this file")
    args = ap.parse_args(argv)
    parse_assignments(args.env)
    parse_assignments(args.faust, "--faust")
    result = run(args, lambda msg: print(msg, flush=True))
    print(format_table(result["rows"]))
    for key in ("rss_slope_mb_per_100k_after_100k", "rss_slope_mb_per_100k_all", "anon_slope_mb_per_100k_after_100k",
                "malloc_inuse_slope_after_100k"):
        value = result[key]
        print(f"{key}: {'-' if value is None else f'{value:+.1f} MB'}")
    print("gc-tracked objects at the end:", result["gc_types_at_end"]["types"][:12])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
