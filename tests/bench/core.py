"""``feedback bench``: rerunnable benchmarks, each reported next to a baseline measured in the same run.

A stage is a function ``(BenchContext) -> list[Result]`` registered with :func:`stage`; the modules
listed in ``STAGE_MODULES`` are imported so their stages register themselves. Stages may share
expensive set-up (a broker, running components) through :meth:`BenchContext.shared_resource`;
everything registered there is closed when the run ends, also on Ctrl-C.

The pure helpers here (:func:`percentile`, :class:`Pacer`, the report renderers) are unit-tested;
nothing in the test suite times anything.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

#: Modules holding ``@stage`` functions (each feature adds its own module here).
STAGE_MODULES: list[str] = ["tests.bench.spine", "tests.bench.tickets_stage", "tests.bench.sink_stage",
                            "tests.bench.email_stage", "tests.bench.enrichment_stage",
                            "tests.bench.signals_stage"]

T = TypeVar("T")


@dataclass
class Result:
    """One measured figure; ``baseline`` is the same figure for the baseline of the same run.

    ``target`` (optional) is the bar the figure is held against: a floor when ``higher_is_better``,
    else a ceiling.
    """

    stage: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    notes: str = ""
    target: float | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]

    @property
    def meets_target(self) -> bool | None:
        if self.target is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, meets_target=self.meets_target)
        if isinstance(data["value"], float) and math.isnan(data["value"]):
            data["value"] = None
        return data


@dataclass
class BenchContext:
    """Parameters of one run plus the resources its stages share (closed by :meth:`close`)."""

    records: int = 50_000
    workdir: Path = field(default_factory=lambda: Path("bench-results"))
    quick: bool = False
    seed: int = 20240601
    http_rate: float = 500.0
    http_seconds: float = 20.0
    http_batch: int = 10
    processors: int = 1
    broker: str = "tansu"  # the bench's broker: the embedded Tansu or Apache Kafka (one KRaft node)
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))
    shared: dict[str, Any] = field(default_factory=dict)
    resources: ExitStack = field(default_factory=ExitStack)
    load_before: float | None = None  # 1-minute load average when the run started
    failed: list[str] = field(default_factory=list)  # stages that raised

    def shared_resource(self, name: str, factory: Callable[[], T], close: Callable[[T], Any]) -> T:
        """The resource ``name`` of this run, created on first use and closed with the run."""
        if name not in self.shared:
            value = factory()
            self.shared[name] = value
            self.resources.callback(close, value)
        return self.shared[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.resources.close()
        self.shared.clear()


StageFn = Callable[[BenchContext], list[Result]]
STAGES: dict[str, StageFn] = {}


def stage(name: str) -> Callable[[StageFn], StageFn]:
    def register(fn: StageFn) -> StageFn:
        STAGES[name] = fn
        return fn

    return register


def load_stages() -> dict[str, StageFn]:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return STAGES


def run(ctx: BenchContext, names: Sequence[str] | None = None) -> list[Result]:
    """Run the named stages (all registered ones by default) in registration order."""
    stages = load_stages()
    unknown = [n for n in names or [] if n not in stages]
    if unknown:
        raise KeyError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(stages)}")
    selected = [n for n in stages if not names or n in names]
    results: list[Result] = []
    ctx.load_before = load_average()
    if ctx.load_before is not None and ctx.load_before > 0.5 * (os.cpu_count() or 1):
        ctx.log(f"[bench] warning: load average {ctx.load_before:.1f} before the run: other processes "
                "are busy on this machine and will lower the figures")
    try:
        for name in selected:
            ctx.log(f"[bench] stage {name} ...")
            started = time.monotonic()
            try:
                results.extend(stages[name](ctx))
            except Exception as exc:  # one broken stage must not lose the others' figures
                ctx.failed.append(name)
                ctx.log(f"[bench] stage {name} FAILED: {type(exc).__name__}: {exc}")
                results.append(Result(name, "stage failed", math.nan, "", notes=f"{type(exc).__name__}: {exc}"[:300]))
                continue
            ctx.log(f"[bench] stage {name} done in {time.monotonic() - started:.0f} s")
    finally:
        ctx.close()
    return results


def machine() -> str:
    """CPU model, cores, memory, OS and Python of this machine, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages * size / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


# -- statistics ------------------------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def latency_results(stage_name: str, metric: str, seconds: Sequence[float], notes: str = "",
                    p99_target: float | None = None) -> list[Result]:
    """p50 and p99 of ``seconds`` as two results (the p99 optionally held against a ceiling)."""
    n = f"n={len(seconds)}" + (f"; {notes}" if notes else "")
    return [
        Result(stage_name, f"{metric} p50", percentile(seconds, 50), "s", notes=n),
        Result(stage_name, f"{metric} p99", percentile(seconds, 99), "s", notes=n,
               target=p99_target, higher_is_better=False),
    ]


# -- pacing ------------------------------------------------------------------------------------------
@dataclass
class Pacer:
    """An open-loop schedule: event ``k`` is due at ``start + k / rate`` whatever happened before.

    Slow answers therefore never lower the offered load (no coordinated omission); a sender that
    falls behind sends at once and :meth:`lag` says by how much.
    """

    rate: float
    start: float

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")

    def due(self, k: int) -> float:
        return self.start + k / self.rate

    def delay(self, k: int, now: float) -> float:
        """Seconds to wait before sending event ``k`` (0 when it is due or overdue)."""
        return max(0.0, self.due(k) - now)

    def lag(self, k: int, now: float) -> float:
        """How late event ``k`` is at ``now`` (0 when on time)."""
        return max(0.0, now - self.due(k))


async def paced(pacer: Pacer, count: int, clock: Callable[[], float],
                sleep: Callable[[float], Awaitable[Any]]) -> AsyncIterator[int]:
    """Yield ``0..count-1``, each once it is due by ``pacer`` (``clock``/``sleep`` are injectable)."""
    for k in range(count):
        wait = pacer.delay(k, clock())
        if wait > 0:
            await sleep(wait)
        yield k


def split_batches(total: int, size: int) -> list[int]:
    """Sizes of the requests that carry ``total`` records ``size`` at a time."""
    if size < 1:
        raise ValueError("size must be >= 1")
    full, rest = divmod(total, size)
    return [size] * full + ([rest] if rest else [])


# -- reporting ---------------------------------------------------------------------------------------
def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()


def fmt_target(result: Result) -> str:
    if result.target is None:
        return ""
    op = "≥" if result.higher_is_better else "≤"
    verdict = {True: "met", False: "MISSED", None: ""}[result.meets_target]
    return f"{op} {fmt_value(result.target, result.unit)} {verdict}".strip()


def _row(r: Result) -> list[str]:
    ratio = r.ratio
    baseline = "" if r.baseline is None else f"{fmt_value(r.baseline, r.unit)} ({r.baseline_name or 'baseline'})"
    return [r.stage, r.metric, fmt_value(r.value, r.unit), baseline,
            "" if ratio is None else f"{ratio:.2f}x", fmt_target(r), r.notes]


HEADERS = ["stage", "metric", "value", "baseline (same run)", "ratio", "target", "notes"]


def header_line(meta: dict[str, Any]) -> str:
    load = meta.get("load_average")
    return (f"Machine: {meta['machine']} · broker: {meta.get('broker', 'tansu')} · records: {meta['records']:,}"
            f" · date: {meta['date']}"
            + (f" · load average before/after: {load[0]:.2f}/{load[1]:.2f}" if load and None not in load else "")
            + (" · quick run" if meta.get("quick") else ""))


def markdown(results: Sequence[Result], meta: dict[str, Any]) -> str:
    """The results as a Markdown table, preceded by the machine, N and the date."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [header_line(meta), "", "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in _row(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def rich_table(results: Sequence[Result], meta: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="feedback bench", caption=header_line(meta), show_lines=False)
    for h in HEADERS:
        table.add_column(h, overflow="fold", justify="right" if h in ("value", "ratio") else "left")
    for r in results:
        row = _row(r)
        if r.meets_target is False:
            row[5] = f"[bold red]{row[5]}[/bold red]"
        elif r.meets_target:
            row[5] = f"[green]{row[5]}[/green]"
        table.add_row(*row)
    return table


def meta_for(ctx: BenchContext) -> dict[str, Any]:
    return {"machine": machine(), "records": ctx.records, "quick": ctx.quick,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": [ctx.load_before, load_average()],
            "http": {"rate": ctx.http_rate, "seconds": ctx.http_seconds, "batch": ctx.http_batch},
            "processors": ctx.processors, "broker": ctx.broker}


def to_json(results: Sequence[Result], meta: dict[str, Any]) -> str:
    return json.dumps({**meta, "results": [r.as_dict() for r in results]}, indent=2, default=str)


def write_report(out: Path, results: Sequence[Result], meta: dict[str, Any]) -> list[Path]:
    """Write ``results.json`` and ``results.md`` into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(to_json(results, meta) + "\n")
    paths[1].write_text(markdown(results, meta))
    return paths
