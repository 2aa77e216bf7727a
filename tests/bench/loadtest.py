"""``feedback loadtest`` (``make loadtest``): sustained HTTP load from wrk while the pipeline drains
into PostgreSQL; reports accepted requests/s, latency, end-to-end lag, RSS growth and the exact count.

Guarantees: the final count compares the rows in the warehouse with the requests wrk saw answered
``202`` and the requests it sent (each carries a unique ``source_ref``): every accepted request must
be a row, and no row may exist that was never sent, so loss or duplication shows as a mismatch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from pipeline.errors import ConfigError
from tests.bench.core import machine
from tests.bench.rig import Rig, epoch, wait_count

WRK_SCRIPT = r"""
local texts = {
  "The parcel arrived two days late and the box was damaged.",
  "Great support, they solved my login problem in minutes!",
  "I was charged twice this month, please refund.",
  "The app keeps crashing when I open my invoices.",
  "Delivery was quick and the product quality is excellent.",
  "Still waiting for a reply from customer service after a week.",
}
counter = 0
thread_id = 0
accepted, rejected, failed = 0, 0, 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format('{"source_ref":"%s-%d-%d","text":"%s","nps_score":%d}',
    RUN, thread_id, counter, texts[(counter % #texts) + 1], counter % 11)
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1
  elseif status >= 400 and status < 500 then rejected = rejected + 1
  else failed = failed + 1 end
end

function done(summary, latency, requests)
  local a, r, f, n = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); r = r + t:get("rejected"); f = f + t:get("failed"); n = n + t:get("counter")
  end
  io.write(string.format(
    'RESULT {"accepted":%d,"rejected":%d,"failed":%d,"issued":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"requests":%d,"duration_us":%d,"socket_errors":%d}\n',
    a, r, f, n, latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass
class LoadResult:
    machine: str
    date: str
    duration_s: float
    connections: int
    threads: int
    warehouse: str
    accepted: int
    rejected: int
    failed: int
    socket_errors: int
    accepted_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    drain_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    issued: int
    rows: int
    exact: bool
    rss_start_mb: dict[str, float] = field(default_factory=dict)
    rss_end_mb: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"Load test on {self.machine}, {self.date}: wrk, {self.threads} threads, {self.connections} "
            f"connections, {self.duration_s:.0f} s against `POST /v1/events`, warehouse {self.warehouse}.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| accepted requests/s (202) | {self.accepted_per_s:,.0f} |",
            f"| HTTP latency p50 / p99 / max | {self.p50_ms:.1f} / {self.p99_ms:.1f} / {self.max_ms:.0f} ms |",
            f"| answers 202 / 4xx / other / socket errors | {self.accepted:,} / {self.rejected} / {self.failed}"
            f" / {self.socket_errors} |",
            f"| end-to-end (received -> written) p50 / p99 | {self.e2e_p50_s:.2f} / {self.e2e_p99_s:.2f} s |",
            f"| drain after the load stopped | {self.drain_s:.1f} s |",
            f"| rows in the warehouse / accepted / sent | {self.rows:,} / {self.accepted:,} / {self.issued:,} "
            f"({'exact' if self.exact else 'MISMATCH'}; requests still in flight when wrk stopped are "
            "answered after it stopped counting) |",
            "",
            "| process | RSS at start (MB) | RSS at end (MB) |",
            "|---|---|---|",
        ]
        for name in sorted(self.rss_end_mb):
            lines.append(f"| {name} | {self.rss_start_mb.get(name, 0):.0f} | {self.rss_end_mb[name]:.0f} |")
        return "\n".join(lines) + "\n"


def _rss_mb(rig: Rig) -> dict[str, float]:
    out = {}
    for name, proc in rig.procs.items():
        try:
            p = psutil.Process(proc.pid)
            out[name] = sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 2**20
        except psutil.Error:
            continue
    return out


def _pg_schema_url(dsn: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(duration: int, connections: int, threads: int, pg_dsn: str | None, workdir: Path,
        log: Any = print) -> LoadResult:
    """Start the pipeline, drive wrk for ``duration`` seconds, wait for the drain, measure."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise ConfigError("wrk is not installed (Debian: apt-get install -y wrk)")
    workdir.mkdir(parents=True, exist_ok=True)
    rig = Rig(workdir, log)
    schema = f"loadtest_{uuid.uuid4().hex[:8]}"
    try:
        if pg_dsn:
            rig.warehouse_url = _pg_schema_url(pg_dsn, schema)
        rig.start_broker()
        rig.ensure_pipeline(http=True)
        rss_start = _rss_mb(rig)
        run_id = f"lt{rig.run_id}"
        script = workdir / "loadtest.lua"
        script.write_text(f'RUN = "{run_id}"\n' + WRK_SCRIPT)
        log(f"[loadtest] wrk -t{threads} -c{connections} -d{duration}s against {rig.http_url}")
        started = time.monotonic()
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
             rig.http_url], capture_output=True, text=True, timeout=duration + 120, check=True,
        ).stdout
        load_end = time.monotonic()
        match = re.search(r"^RESULT (\{.*\})$", out, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk printed no result:\n{out}")
        res = json.loads(match.group(1))
        rig.check()
        log(f"[loadtest] {res['accepted']} accepted; waiting for the pipeline to drain")
        rows = wait_count(lambda: rig.count(run_id + "-"), res["accepted"], stall=60, what="drain",
                          check=rig.check)
        drained = time.monotonic()
        # requests in flight when wrk stopped may still land; give them a moment, then count
        wait_count(lambda: rig.count(run_id + "-"), res["issued"], stall=3, what="in-flight", check=rig.check)
        rows = rig.count(run_id + "-")
        e2e = [epoch(w) - epoch(r) for _, r, _, w in rig.rows(run_id + "-")]
        rss_end = _rss_mb(rig)
        wall = res["duration_us"] / 1e6 or (load_end - started)
        return LoadResult(
            machine=machine(), date=datetime.now(UTC).strftime("%Y-%m-%d"), duration_s=wall,
            connections=connections, threads=threads,
            warehouse="PostgreSQL" if pg_dsn else "SQLite",
            accepted=res["accepted"], rejected=res["rejected"], failed=res["failed"],
            socket_errors=res["socket_errors"], accepted_per_s=res["accepted"] / wall,
            p50_ms=res["p50_us"] / 1000, p99_ms=res["p99_us"] / 1000, max_ms=res["max_us"] / 1000,
            drain_s=max(0.0, drained - load_end), e2e_p50_s=_percentile(e2e, 50), e2e_p99_s=_percentile(e2e, 99),
            issued=res["issued"], rows=rows, exact=res["accepted"] <= rows <= res["issued"],
            rss_start_mb=rss_start, rss_end_mb=rss_end,
        )
    finally:
        rig.close()
        if pg_dsn:
            import psycopg

            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def to_json(result: LoadResult) -> str:
    return json.dumps(asdict(result), indent=2)
