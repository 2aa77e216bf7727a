"""``feedback up``: runs the whole pipeline on one machine as supervised child processes.

Guarantees: a child that dies is restarted with exponential backoff; on SIGINT/SIGTERM every child
is stopped (SIGTERM, then SIGKILL after a grace period) before the supervisor exits; children are
in their own sessions and get SIGTERM from the kernel if the supervisor itself is killed, so no
process is left orphaned.

The broker it runs is handled by rule (the embedded Tansu broker comes back empty): when it dies,
the broker gate (:mod:`pipeline.gate`) closes at once, every child but the HTTP service stops, the
broker starts again, the topics are provisioned, the gate opens on the new broker start and the
stopped children start again (connectors resume from their saved cursors; the processor and the
sinks read the new topics from their beginning). The HTTP service stays up and answers ``503`` with
``Retry-After`` meanwhile: its publisher refuses to send while the gate is closed, and accepts acks
only when the gate did not move between the send and the acks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import broker, plugins
from pipeline.broker import die_with_parent as _die_with_parent
from pipeline.config import UpSettings
from pipeline.errors import ConfigError
from pipeline.gate import BrokerGate, GateState
from pipeline.logging import get_logger
from pipeline.topics import ensure_topics

log = get_logger(__name__)

GRACE_SECONDS = 15.0
CONFIG_ERROR_EXIT = 2  # what every component exits with on a ConfigError (pipeline.cli.main)
HEALTHY_AFTER = 60.0
#: Children that stay up while the broker restarts: they publish only through the broker gate, and
#: answer their clients 503 + Retry-After meanwhile instead of refusing connections.
GATED = frozenset({"http"})


@dataclass
class Child:
    name: str
    argv: list[str]
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = field(default=1.0)
    env: dict[str, str] = field(default_factory=dict)  # this child's own settings on top of the shared ones

    def start(self, env: dict[str, str]) -> None:
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, env={**env, **self.env}, start_new_session=True, preexec_fn=_die_with_parent,
            stdout=out, stderr=subprocess.STDOUT if out else None,
        )
        self.started_at = time.monotonic()
        log.info("started", child=self.name, pid=self.proc.pid)


class Supervisor:
    """Starts, watches, restarts and finally stops the pipeline's processes."""

    def __init__(self, settings: UpSettings, with_broker: bool) -> None:
        self.settings = settings
        self.with_broker = with_broker
        self.env = dict(os.environ)
        self.env["FEEDBACK_KAFKA_BOOTSTRAP"] = settings.bootstrap
        self.env["FEEDBACK_DATA_DIR"] = str(settings.data_dir.resolve())
        self.env.setdefault("FEEDBACK_WAREHOUSE_URL", settings.database_url)
        if self.env.pop("FEEDBACK_METRICS_PORT", None) is not None:
            # one variable for every child would put them all on one port: each keeps its own default
            log.warning("FEEDBACK_METRICS_PORT is ignored under feedback up; set FEEDBACK_PROCESSOR_METRICS_PORT, "
                        "FEEDBACK_SINK_METRICS_PORT, FEEDBACK_ALERT_METRICS_PORT to move the children's ports")
        self.env.setdefault("FEEDBACK_LOG_FORMAT", "json" if settings.log_format == "json" else "console")
        self.gate = BrokerGate(settings.data_dir.resolve() / "broker.gate" if with_broker else None)
        self._broker_starts = 0
        if self.gate.path is not None:
            self.env["FEEDBACK_BROKER_GATE"] = str(self.gate.path)
        me = [sys.executable, "-m", "pipeline"]
        self.children: list[Child] = []
        if with_broker:
            self.children.append(Child("broker", self._broker_command(settings),
                                       log_file=settings.data_dir / "broker.log"))
        # the components register their children (pipeline/plugins.py, entry points "feedback.services"):
        # today the warehouse sink, the processor, the alert sink, HTTP, and e-mail when FEEDBACK_IMAP_HOST is set
        self.services = plugins.services()
        for name, service in self.services:
            if name == "processor":  # several workers in one consumer group (FEEDBACK_PROCESSOR_WORKERS)
                self.children += self._processor_workers([*me, *service.args])
            else:
                self.children.append(Child(name, [*me, *service.args]))
        self._stopping = False

    def _processor_workers(self, argv: list[str]) -> list[Child]:
        """Worker 0 keeps today's name and port; worker n serves its metrics on that port + 100 n (9201, 9301 ...)."""
        from pipeline.config import ProcessorSettings, load

        base = load(ProcessorSettings).metrics_port
        return [Child("processor" if n == 0 else f"processor-{n}", argv,
                      env={} if n == 0 else {"FEEDBACK_PROCESSOR_WORKER": str(n),
                                             "FEEDBACK_PROCESSOR_METRICS_PORT": str(base + 100 * n)})
                for n in range(self.settings.processor_worker_count)]

    @staticmethod
    def _broker_command(settings: UpSettings) -> list[str]:
        """Tansu (in memory), or Apache Kafka with its data under ``data_dir/kafka`` (kept across restarts)."""
        if settings.embedded_broker == "kafka":
            from pipeline import kafka_broker

            kafka_broker.fetch()  # resolves the jars once (Maven), so a missing tool is a ConfigError here
            return [sys.executable, "-m", "pipeline.kafka_broker", "run",
                    "--data", str((settings.data_dir / "kafka").resolve()),
                    "--port", str(settings.embedded_broker_port)]
        return broker.broker_command(settings.embedded_broker_port)

    def _signal(self, signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._record_data_location()
        port = self.settings.embedded_broker_port
        if self.with_broker and broker.port_open("127.0.0.1", port):
            raise ConfigError(f"port {port} is in use: is another pipeline running? "
                              "Set FEEDBACK_EMBEDDED_BROKER_PORT, or FEEDBACK_KAFKA_BOOTSTRAP with --no-broker")
        self._migrate()
        try:
            for child in self.children:
                self._start(child)
                if self._stopping:
                    break
            while not self._stopping:
                self._watch()
                time.sleep(0.2)
        finally:
            self.stop_all()
        return 0

    def _record_data_location(self) -> None:
        """Tell the other commands, run from any folder, where this pipeline keeps its data."""
        from pipeline.data_location import write_data_location

        try:
            written = write_data_location(self.settings.data_dir)
        except OSError as exc:  # a read-only home or folder: the commands then need FEEDBACK_DATA_DIR
            log.warning("data location not recorded", data_dir=str(self.settings.data_dir), error=str(exc))
            return
        log.info("data location recorded", data_dir=str(self.settings.data_dir), files=[str(p) for p in written])

    def _migrate(self) -> None:
        """Run each service's ``prepare`` once before the children start (the warehouse sink's migrates
        the schema: otherwise both sinks migrate a new database at the same moment and one fails)."""
        for name, service in self.services:
            if service.prepare is None:
                continue
            try:
                service.prepare(self.env)
            except Exception as exc:  # e.g. the database is not up yet: the children retry on their own
                log.warning("service not prepared before start; it will retry", service=name, error=str(exc))

    def _start(self, child: Child) -> None:
        child.start(self.env)
        if child.name == "broker":
            assert child.proc is not None
            timeout = 120.0 if self.settings.embedded_broker == "kafka" else 20.0  # a JVM starts slower
            broker.wait_ready("127.0.0.1", self.settings.embedded_broker_port, timeout=timeout, proc=child.proc)
            ensure_topics(self.settings)
            self._broker_starts += 1
            self.gate.write(GateState(open=True, epoch=self._broker_starts))  # publishers may send again

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if child.name != "broker" and self._broker_down():
                    continue  # everything else starts only once the broker is back and provisioned
                if now >= child.next_start:
                    try:
                        self._start(child)
                    except Exception as exc:  # broker failed to come up: try again later
                        log.error("start failed", child=child.name, error=str(exc))
                        child.proc = None
                        child.next_start = now + child.backoff
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at > HEALTHY_AFTER:
                    child.backoff = 1.0
                continue
            child.restarts += 1
            child.proc = None
            child.next_start = now + child.backoff
            if code == CONFIG_ERROR_EXIT and child.name != "broker":
                # a setting is wrong: restarting cannot fix it, and a loop would bury the message
                child.next_start = float("inf")
                log.error("configuration error: not restarted; fix the setting named in its log and restart "
                          "feedback up", child=child.name, code=code)
                continue
            if child.name == "broker":
                self.gate.write(GateState(open=False, epoch=self._broker_starts))  # first: no ack counts now
                self._restart_around_broker(code)
                return
            log.warning("child exited; restarting", child=child.name, code=code,
                        restart_in=child.backoff, restarts=child.restarts)
            child.backoff = min(child.backoff * 2, 30.0)

    def _broker_down(self) -> bool:
        return any(c.name == "broker" and (c.proc is None or c.proc.poll() is not None) for c in self.children)

    def _restart_around_broker(self, code: int | None) -> None:
        """The broker died (the gate is closed already). By rule, not by workarounds in the data path: stop
        every other child but the gated ones, then start the broker again, provision the topics, open the
        gate, and start the others in their order (the loop in :meth:`_watch` does both, broker first). The
        embedded Tansu broker comes back empty; consumers that kept running would wait on offsets it
        forgot, and producers could publish into topics it no longer lists (it acknowledges, then drops)."""
        log.warning("broker exited; stopping the other children to restart them after it", code=code,
                    staying_up=sorted(GATED & {c.name for c in self.children}))
        restarted = [c for c in self.children if c.name != "broker" and c.name not in GATED]
        self._stop_children(restarted)
        now = time.monotonic()
        for other in restarted:
            other.proc = None
            other.next_start = now

    def stop_all(self) -> None:
        """Stop in reverse start order: HTTP first, the broker last; SIGKILL after the grace period."""
        self._stop_children(self.children)
        if self.gate.path is not None:
            self.gate.path.unlink(missing_ok=True)

    @staticmethod
    def _stop_children(children: list[Child]) -> None:
        for child in reversed(children):
            if child.proc is None or child.proc.poll() is not None:
                continue
            child.proc.terminate()
            try:
                child.proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing", child=child.name)
                child.proc.kill()
                child.proc.wait()
            log.info("stopped", child=child.name, code=child.proc.returncode)
