"""Apache Kafka (KRaft) on this machine: the broker jars from Maven Central, run with ``java``.

For the test suite and durable single-machine runs (``FEEDBACK_EMBEDDED_BROKER=kafka``): one combined
broker/controller, or a cluster of combined nodes, on free loopback ports with its data in a given folder.
The jars are resolved once by the small Maven project ``deploy/kafka/pom.xml`` into a cache folder
(``FEEDBACK_KAFKA_CACHE``, default ``~/.cache/feedback-pipeline/kafka``); nothing is downloaded at run time
once they are there.

Guarantees: a started node accepts connections and lists every node of its cluster before ``start``
returns; storage is formatted only once per data folder (a restart keeps the topics and offsets); every
node is a child that gets SIGTERM from the kernel if this process dies.

    python -m pipeline.kafka_broker fetch [--version 4.1.1]     # resolve the jars into the cache
    python -m pipeline.kafka_broker run --data DIR [--nodes 3]  # run until Ctrl-C, print the bootstrap
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.broker import die_with_parent, free_port, port_open
from pipeline.errors import ConfigError, TransientError

DEFAULT_VERSION = "4.1.1"
POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"
READY_TIMEOUT = 90.0

LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server
logger.server.level = info
logger.ctrl.name = org.apache.kafka.controller
logger.ctrl.level = warn
"""
LOG4J1 = """log4j.rootLogger=WARN, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server=INFO
"""


def cache_root() -> Path:
    root = os.environ.get("FEEDBACK_KAFKA_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "feedback-pipeline" / "kafka"


def libs_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / version / "libs"


def fetch(version: str = DEFAULT_VERSION, quiet: bool = True) -> Path:
    """Resolve ``kafka_2.13:version`` and its runtime dependencies into the cache (once) and return the folder."""
    libs = libs_dir(version)
    done = libs.parent / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError("Apache Kafka needs Maven to resolve its jars once: install maven (and Java 17)")
    if not POM.exists():
        raise ConfigError(f"{POM} not found: run from a checkout of the repository or set FEEDBACK_KAFKA_CACHE "
                          "to a folder that already holds <version>/libs")
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [mvn, "-B", "-f", str(POM), f"-Dkafka.version={version}", f"-Dkafka.libs={libs}",
           "dependency:copy-dependencies"]
    if quiet:
        cmd.insert(1, "-q")
    if version.startswith("3."):
        cmd.append("-Dkafka3")
    proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"Maven could not resolve Apache Kafka {version}: {(proc.stdout or '')[-2000:]}")
    done.write_text(version)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what ``random-uuid`` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Node:
    """One combined broker/controller of a cluster."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.data_dir / "server.properties"


@dataclass
class KafkaCluster:
    """Apache Kafka nodes in KRaft mode on loopback. ``start`` formats new storage, then runs every node."""

    data_dir: Path
    nodes_count: int = 1
    version: str = DEFAULT_VERSION
    partitions: int = 6
    heap: str = "512m"
    extra: dict[str, str] = field(default_factory=dict)
    port: int | None = None  # the first node's client port (free ports when unset)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_file = self.data_dir / "ports"
        if ports_file.exists():  # a restart keeps its ports, so clients and the stored metadata agree
            pairs = [tuple(int(p) for p in line.split()) for line in ports_file.read_text().split("\n") if line]
        else:
            pairs = [(free_port(), free_port()) for _ in range(self.nodes_count)]
            if self.port is not None:
                pairs[0] = (self.port, pairs[0][1])
            ports_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
        self.nodes = [Node(i + 1, a, b, self.data_dir / f"node-{i + 1}") for i, (a, b) in enumerate(pairs)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def _properties(self, node: Node) -> str:
        replication = min(3, len(self.nodes))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.data_dir / "log"),
            "num.partitions": str(self.partitions),
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(2 if replication >= 3 else 1),
            "offsets.topic.replication.factor": str(replication),
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(2 if replication >= 3 else 1),
            "share.coordinator.state.topic.replication.factor": str(replication),
            "share.coordinator.state.topic.min.isr": str(2 if replication >= 3 else 1),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.segment.bytes": str(64 * 1024 * 1024),
            **self.extra,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ConfigError("Apache Kafka needs Java 17: install a JDK or use the embedded Tansu broker")
        libs = fetch(self.version)
        return [
            java, f"-Xmx{self.heap}", "-Xss1m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def _prepare(self) -> None:
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        (self.data_dir / "log4j.properties").write_text(LOG4J1)
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        cluster_id = id_file.read_text().strip()
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._properties(node))
            if (node.data_dir / "log" / "meta.properties").exists():
                continue
            proc = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                                             "-c", str(node.config), "--ignore-formatted"),
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ConfigError(f"formatting Kafka storage failed: {proc.stdout}{proc.stderr}")

    def start(self, timeout: float = READY_TIMEOUT) -> KafkaCluster:
        self._prepare()
        for node in self.nodes:
            self.start_node(node.node_id, wait=False)
        self.wait_ready(timeout)
        return self

    def start_node(self, node_id: int, wait: bool = True) -> None:
        node = self.nodes[node_id - 1]
        if port_open("127.0.0.1", node.port):
            raise ConfigError(f"port {node.port} of Kafka node {node_id} is already in use")
        out = open(node.data_dir / "server.log", "ab")  # noqa: SIM115
        node.proc = subprocess.Popen(self._java("kafka.Kafka", str(node.config)), stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        if wait:
            self.wait_ready()

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[node_id - 1]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(sig)
            node.proc.wait(timeout=60)
        node.proc = None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every running node accepts connections and the cluster lists them all as brokers."""
        from kafka.admin import KafkaAdminClient

        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.proc is not None]
        last: object = None
        while time.monotonic() < deadline:
            for n in running:
                if n.proc is not None and n.proc.poll() is not None:
                    tail = (n.data_dir / "server.log").read_text(errors="replace")[-3000:]
                    raise TransientError(f"Kafka node {n.node_id} exited with {n.proc.returncode}:\n{tail}")
            if all(port_open("127.0.0.1", n.port) for n in running):
                try:
                    admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                    try:
                        brokers = admin.describe_cluster().get("brokers", [])
                    finally:
                        admin.close()
                    if len(brokers) >= len(running):
                        return
                    last = brokers
                except Exception as exc:  # not ready yet, whatever the client says
                    last = exc
            time.sleep(0.25)
        raise TransientError(f"Kafka at {self.bootstrap} not ready after {timeout}s (last: {last!r})")

    def stop(self, grace: float = 20.0) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            node.proc = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kafka_broker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="resolve the Kafka jars into the cache")
    f.add_argument("--version", default=os.environ.get("FEEDBACK_KAFKA_VERSION", DEFAULT_VERSION))
    r = sub.add_parser("run", help="run a cluster until interrupted")
    r.add_argument("--version", default=os.environ.get("FEEDBACK_KAFKA_VERSION", DEFAULT_VERSION))
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--nodes", type=int, default=1)
    r.add_argument("--port", type=int, default=None, help="client port of the first node (default: a free one)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            print(fetch(args.version, quiet=False))
            return 0
        cluster = KafkaCluster(args.data, nodes_count=args.nodes, version=args.version, port=args.port).start()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TransientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(cluster.bootstrap, flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and all(n.proc is not None and n.proc.poll() is None for n in cluster.nodes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
