"""The benchmark rig: an embedded broker and the real pipeline processes, watched and cleaned up.

Guarantees: every child runs in its own session (a Ctrl-C reaches only the bench, which then stops
the children: SIGTERM, SIGKILL after a grace period, the broker last) and gets SIGTERM from the kernel if
the bench itself dies, so no process outlives a run. A :class:`Sampler` thread records the max RSS
and the CPU time of every tracked process per measurement window.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from pipeline import broker
from pipeline.config import CommonSettings, load
from pipeline.supervisor import _die_with_parent
from pipeline.topics import Topics, ensure_topics

#: The customer-hash key of a bench run (at least 32 bytes: a shorter one is refused at start).
BENCH_CUSTOMER_KEY = "bench-" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" * 2
#: The name of the HTTP service's API token: the service stores source_ref as ``<name>:<source_ref>``.
HTTP_TOKEN_NAME = "bench"
#: The repository root (the folder holding ``tests/``), put on the children's ``PYTHONPATH``.
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def epoch(value: datetime) -> float:
    """Unix time of a warehouse timestamp (SQLite hands back naive UTC datetimes)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def wait_until(pred: Callable[[], Any], timeout: float, what: str,
               check: Callable[[], None] = lambda: None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_count(count: Callable[[], float], target: int, stall: float, what: str,
               check: Callable[[], None] = lambda: None) -> int:
    """Wait until ``count()`` reaches ``target``; give up when it made no progress for ``stall`` s."""
    last, last_change = -1.0, time.monotonic()
    while True:
        check()
        now_count = count()
        if now_count >= target:
            return int(now_count)
        if now_count != last:
            last, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return int(now_count)  # stalled: report the honest partial number
        time.sleep(0.2)


@dataclass
class Usage:
    max_rss: int = 0
    cpu_seconds: float = 0.0


@dataclass
class Window:
    wall: float
    usage: dict[str, Usage] = field(default_factory=dict)


class Sampler:
    """Samples RSS (process + children) and CPU time of tracked processes every ``interval`` s."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._procs: dict[str, psutil.Process] = {}
        self._alone: set[str] = set()
        self._lock = threading.Lock()
        self._max: dict[str, int] = {}
        self._cpu: dict[str, float] = {}
        self._base: dict[str, float] = {}
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()

    def track(self, name: str, pid: int, children: bool = True) -> None:
        """Sample ``pid`` as ``name`` (with its descendants' RSS unless ``children`` is false)."""
        with self._lock:
            self._procs[name] = psutil.Process(pid)
            self._base.pop(name, None)
            if not children:
                self._alone.add(name)

    def _sample(self) -> None:
        with self._lock:
            for name, proc in list(self._procs.items()):
                try:
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        cpu = sum(proc.cpu_times()[:2])
                    if name not in self._alone:
                        rss += sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
                self._max[name] = max(self._max.get(name, 0), rss)
                self._cpu[name] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def begin(self) -> None:
        """Start a measurement window."""
        self._sample()
        with self._lock:
            self._max = {}
            self._base = dict(self._cpu)
            self._t0 = time.monotonic()
        self._sample()

    def end(self) -> Window:
        """Close the window: max RSS and CPU seconds per process since :meth:`begin`."""
        self._sample()
        with self._lock:
            wall = time.monotonic() - self._t0
            usage = {n: Usage(rss, self._cpu.get(n, 0.0) - self._base.get(n, 0.0)) for n, rss in self._max.items()}
        return Window(wall, usage)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Rig:
    """Broker, pipeline processes and a temporary SQLite warehouse for one bench run."""

    def __init__(self, workdir: Path, log: Callable[[str], None], broker_kind: str = "tansu") -> None:
        self.workdir = workdir
        self.broker_kind = broker_kind  # "tansu" (the embedded default) or "kafka" (Apache Kafka, one KRaft node)
        self.log = log
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"bench{self.run_id}."
        self.dir = Path(tempfile.mkdtemp(prefix="feedback-bench-"))
        self.port = broker.free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.warehouse_url = f"sqlite:///{self.dir / 'warehouse.db'}"
        self.ports = {"http": broker.free_port(), "processor": broker.free_port(), "sink": broker.free_port()}
        self.http_url = f"http://127.0.0.1:{self.ports['http']}"
        self.http_token = uuid.uuid4().hex
        self.http_headers = {"Authorization": f"Bearer {self.http_token}"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.expected: set[str] = set()
        self.processors = 1  # processor workers (and passthrough workers) in one consumer group
        self.sampler = Sampler()
        self.sampler.track("bench", os.getpid(), children=False)  # the load generator itself
        self._engine: Engine | None = None

    # -- processes -----------------------------------------------------------------------------
    def start_broker(self) -> None:
        self.log(f"[bench] {self.broker_kind} broker on {self.bootstrap}; workdir {self.dir}")
        if self.broker_kind == "kafka":
            from pipeline.kafka_broker import KafkaCluster

            cluster = KafkaCluster(self.dir / "kafka", port=self.port, heap="1g").start()
            proc = cluster.nodes[0].proc
            assert proc is not None
            self._register("broker", proc)
            return
        proc = broker.start(self.port, log_file=self.dir / "broker.log",
                            start_new_session=True, preexec_fn=_die_with_parent)
        self._register("broker", proc)

    def _register(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.procs[name] = proc
        self.expected.add(name)
        self.sampler.track(name, proc.pid)

    def env(self, suffix: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "FEEDBACK_KAFKA_BOOTSTRAP": self.bootstrap,
            "FEEDBACK_TOPIC_PREFIX": self.prefix + suffix,
            "FEEDBACK_WAREHOUSE_URL": self.warehouse_url,
            "FEEDBACK_DATA_DIR": str(self.dir),
            "FEEDBACK_HTTP_HOST": "127.0.0.1",
            "FEEDBACK_HTTP_PORT": str(self.ports["http"]),
            "FEEDBACK_PROCESSOR_METRICS_PORT": str(self.ports["processor"]),
            "FEEDBACK_SINK_METRICS_PORT": str(self.ports["sink"]),
            "FEEDBACK_LOG_FORMAT": "json",
            "FEEDBACK_CUSTOMER_HASH_KEY": BENCH_CUSTOMER_KEY,
            **extra,
        }

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        Path(env.get("FEEDBACK_DATA_DIR", self.dir)).mkdir(parents=True, exist_ok=True)
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, (REPO_ROOT, env.get("PYTHONPATH"))))}
        with open(self.dir / f"{name}.log", "ab") as out:  # REPO_ROOT: children may run tests.bench modules
            proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        self._register(name, proc)

    def check(self) -> None:
        """Raise (with the log's tail) when a process the bench relies on has exited."""
        for name in self.expected:
            proc = self.procs[name]
            if proc.poll() is not None:
                tail = (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {proc.returncode}; log tail:\n{tail}")

    def stop(self, *names: str, grace: float = 20.0) -> None:
        """SIGTERM the named children together, SIGKILL whatever still runs after ``grace`` seconds."""
        procs = [p for p in (self.procs.pop(n, None) for n in names) if p is not None and p.poll() is None]
        self.expected.difference_update(names)
        try:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in procs:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)

    def wait_idle(self, names: list[str], below: float = 0.15, quiet: float = 3.0, timeout: float = 180.0) -> float:
        """Until each named process used less than ``below`` of a core over ``quiet`` seconds (it has done
        the work it deferred: e.g. the processor's signal windows behind a backlog); returns the seconds
        waited. A CPU window closed before that would leave such work out of the CPU per record."""
        procs = [psutil.Process(self.procs[n].pid) for n in names if n in self.procs]
        started = time.monotonic()
        while procs and time.monotonic() - started < timeout:
            before = [sum(p.cpu_times()[:2]) for p in procs]
            time.sleep(quiet)
            if all(sum(p.cpu_times()[:2]) - b < below * quiet for p, b in zip(procs, before, strict=True)):
                break
        return time.monotonic() - started

    def close(self) -> None:
        """Stop every child (the broker last), keep the logs, remove the temp files."""
        try:
            self.stop(*[n for n in self.procs if n != "broker"])
            self.stop("broker")
        finally:
            for proc in self.procs.values():  # a second Ctrl-C during the graceful stop
                proc.kill()
            self.sampler.stop()
            if self._engine is not None:
                self._engine.dispose()
            if self.workdir.is_dir():
                logs = self.workdir / "logs"
                logs.mkdir(exist_ok=True)
                for path in self.dir.glob("*.log"):
                    shutil.copy(path, logs / path.name)
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the pipeline --------------------------------------------------------------------------
    def topics(self, suffix: str) -> tuple[CommonSettings, Topics]:
        settings = load(CommonSettings, kafka_bootstrap=self.bootstrap, topic_prefix=self.prefix + suffix)
        return settings, ensure_topics(settings)

    def free_port(self) -> int:
        return broker.free_port()

    def ensure_pipeline(self, http: bool = False) -> None:
        """Start sink and processor (and the HTTP service) once; prove the path with a warm-up row."""
        from pipeline.publisher import Publisher
        from tests.bench.data import generate, stamp

        if "processor" not in self.procs:
            self.topics("")
            env = self.env("")
            self.spawn("sink", ["-m", "pipeline", "sink", "warehouse"], env)
            self.spawn("processor", ["-m", "pipeline", "process"], env)
            for i in range(2, self.processors + 1):
                self.spawn(f"processor-{i}", ["-m", "pipeline", "process"],
                           self.env("", FEEDBACK_PROCESSOR_METRICS_PORT=str(self.free_port()),
                                    FEEDBACK_DATA_DIR=str(self.dir / f"processor-{i}")))
            wait_until(lambda: broker.port_open("127.0.0.1", self.ports["sink"]), 60, "the sink", self.check)
            settings, topics = self.topics("")
            pub = Publisher(settings, client_id="feedback-bench-warmup")
            try:
                pub.publish_bytes(topics.raw, stamp(generate(1, 0, run=f"w{self.run_id}"), datetime.now(UTC)))
            finally:
                pub.close()
            wait_until(lambda: self.count(f"w{self.run_id}-") >= 1, 180, "the warm-up row", self.check)
        if http and "http" not in self.procs:
            # A named token that may send every source of the bench records (without one, only source
            # "event" is admitted: 403). Its name prefixes the stored source_ref: HTTP_REF_PREFIX.
            self.spawn("http", ["-m", "pipeline", "serve-http"],
                       self.env("", FEEDBACK_API_TOKENS=f"{HTTP_TOKEN_NAME}:{self.http_token}:webform|ticket|email"))
            wait_until(lambda: broker.port_open("127.0.0.1", self.ports["http"]), 60, "the HTTP service",
                       self.check)
            ref = f"wh{self.run_id}-0"
            resp = httpx.post(f"{self.http_url}/v1/events", json={"source_ref": ref, "text": "warm up"}, timeout=30,
                              headers=self.http_headers)
            resp.raise_for_status()
            wait_until(lambda: self.count(f"{HTTP_TOKEN_NAME}:wh{self.run_id}-") >= 1, 120, "the HTTP warm-up row",
                       self.check)

    def metric(self, port: int, name: str) -> float:
        """Sum of the samples called ``name`` on a process's /metrics (0 when it is not up yet)."""
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        return sum(s.value for fam in text_string_to_metric_families(body) for s in fam.samples if s.name == name)

    # -- the warehouse -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from sinks.warehouse.db import make_engine

            self._engine = make_engine(self.warehouse_url)
        return self._engine

    def count(self, ref_prefix: str) -> int:
        from sinks.warehouse.models import Feedback

        try:
            with self.engine.connect() as conn:
                stmt = select(func.count()).select_from(Feedback).where(Feedback.source_ref.startswith(ref_prefix))
                return int(conn.execute(stmt).scalar_one())
        except Exception:  # the sink has not created the tables yet
            return 0

    def rows(self, ref_prefix: str) -> list[tuple[bytes, datetime, datetime, datetime]]:
        """(Kafka key, received_at, processed_at, written_at) of the rows of one stage."""
        from sinks.warehouse.models import Feedback

        stmt = select(Feedback.feedback_id, Feedback.received_at, Feedback.processed_at, Feedback.written_at
                      ).where(Feedback.source_ref.startswith(ref_prefix))
        with self.engine.connect() as conn:
            return [(str(f).encode(), r, p, w) for f, r, p, w in conn.execute(stmt)]

    def enriched_times(self, topic: str, keys: set[bytes], idle_ms: int = 3000) -> dict[bytes, float]:
        """Broker timestamps (when the processor produced them) of the enriched records with ``keys``."""
        consumer = KafkaConsumer(topic, bootstrap_servers=self.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 consumer_timeout_ms=idle_ms, max_poll_records=5000)
        found: dict[bytes, float] = {}
        try:
            for msg in consumer:
                if msg.key in keys and msg.timestamp and msg.timestamp > 0:
                    found[msg.key] = msg.timestamp / 1000
                    if len(found) == len(keys):
                        break
        finally:
            consumer.close()
        return found
