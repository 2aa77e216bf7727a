"""``python -m tests.bench bench`` (``make bench``) and ``python -m tests.bench loadtest`` (``make loadtest``).

The same options and outputs as the former ``feedback bench`` and ``feedback loadtest``; a configuration
error exits 2 with its message.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pipeline import logging as plog
from pipeline.errors import ConfigError
from tests.bench import core as b

app = typer.Typer(help="Benchmarks and load tests of the feedback pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console(stderr=True)


@app.command()

def bench(
    records: Annotated[int | None, typer.Option(min=1, help="Records pushed into feedback.raw "
                                                "(default 50000; 2000 with --quick).")] = None,
    stage: Annotated[list[str] | None, typer.Option("--stage", help="Run only this stage (repeatable).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small smoke run (fewer records, 5 s of HTTP).")] = False,
    http_rate: Annotated[float, typer.Option(min=1, help="Records/s offered through HTTP.")] = 500.0,
    http_seconds: Annotated[float | None, typer.Option(min=1, help="Seconds of HTTP load (default 20; 5 "
                                                       "with --quick).")] = None,
    http_batch: Annotated[int, typer.Option(min=1, max=500, help="Records per HTTP request.")] = 10,
    processors: Annotated[int, typer.Option(min=1, max=8, help="Processor workers (and baseline workers).")] = 1,
    broker: Annotated[str, typer.Option(help="tansu (the embedded broker) or kafka (Apache Kafka 4, one KRaft "
                                        "node; needs Java 17 and the cached jars).")] = "tansu",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write results.json, results.md and the logs here.")] = None,
) -> None:
    """Benchmark the pipeline on this machine (records/s, latency, RSS) against a same-run baseline."""

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    if broker not in ("tansu", "kafka"):
        raise ConfigError(f"--broker must be tansu or kafka, not {broker!r}")
    scratch = tempfile.TemporaryDirectory(prefix="feedback-bench-out-")  # logs go here without --out
    workdir = out or Path(scratch.name)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = b.BenchContext(records=records or (2000 if quick else 50_000), quick=quick, http_rate=http_rate,
                         http_seconds=http_seconds or (5.0 if quick else 20.0), http_batch=http_batch,
                         processors=processors, broker=broker, workdir=workdir,
                         log=lambda m: console.print(m, markup=False, highlight=False))
    plog.configure("WARNING", "console", "bench")
    try:
        results = b.run(ctx, stage)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    except KeyboardInterrupt:
        console.print("[bench] interrupted: every process it started was stopped", markup=False)
        raise typer.Exit(130) from None
    meta = b.meta_for(ctx)
    if as_json:
        typer.echo(b.to_json(results, meta))
    else:
        wide = Console()
        Console(width=wide.width if wide.is_terminal else 200).print(b.rich_table(results, meta))
    if out is not None:
        for path in b.write_report(out, results, meta):
            console.print(f"wrote {path}")
    scratch.cleanup()
    if ctx.failed:
        console.print(f"[red]failed stages:[/red] {escape(', '.join(ctx.failed))} (see the notes above)")
        raise typer.Exit(1)


@app.command()
def loadtest(
    duration: Annotated[int, typer.Option(help="Seconds of sustained load.")] = 300,
    connections: Annotated[int, typer.Option(help="Concurrent HTTP connections.")] = 16,
    threads: Annotated[int, typer.Option(help="wrk threads.")] = 1,
    pg_dsn: Annotated[str | None, typer.Option(
        envvar="FEEDBACK_LOADTEST_PG_DSN", help="PostgreSQL for the warehouse (a fresh schema); empty: SQLite."
    )] = "postgresql://postgres@127.0.0.1:5432/test",
    out: Annotated[Path, typer.Option(help="Directory for the results and logs.")] = Path("bench-results"),
) -> None:
    """Sustained load with wrk against the HTTP service while the pipeline drains into the warehouse."""
    from tests.bench import loadtest as lt

    result = lt.run(duration, connections, threads, pg_dsn or None, out, log=console.print)
    (out / "loadtest.json").write_text(lt.to_json(result))
    (out / "loadtest.md").write_text(result.markdown())
    typer.echo(result.markdown())
    if not result.exact or result.failed:
        raise typer.Exit(1)


def main() -> None:
    from pipeline.cli import run

    run(app)
