"""Real services for the integration tests: the embedded broker, PostgreSQL, a running pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from pipeline import broker, kafka_broker
from pipeline.kafka_broker import KafkaCluster
from sinks.warehouse.db import make_engine
from tests.conftest import require
from tests.integration import dovecot as dv
from tests.integration.harness import Pipeline

PG_DSN = os.environ.get("FEEDBACK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's broker: Tansu (``--broker=tansu``, default) or one Apache Kafka KRaft node (``--broker=kafka``)."""
    if request.config.getoption("--broker") == "kafka":
        with kafka_cluster(request, tmp_path_factory.mktemp("kafka"), nodes=1) as cluster:
            yield cluster.bootstrap
        return
    port = broker.free_port()
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    proc = broker.start(port, log_file=log)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def kafka_cluster(request: pytest.FixtureRequest, data: Path, nodes: int) -> Iterator[KafkaCluster]:
    """Apache Kafka in KRaft mode (``nodes`` combined brokers/controllers); fails under CI when Java is missing."""
    require(shutil.which("java") is not None, "Java 17 for Apache Kafka (--broker=kafka)")
    version = request.config.getoption("--kafka-version") or kafka_broker.DEFAULT_VERSION
    cluster = KafkaCluster(data, nodes_count=nodes, version=version, partitions=4)
    try:
        cluster.start()
    except Exception as exc:
        cluster.stop()
        require(False, f"Apache Kafka {version} ({exc})")
    try:
        yield cluster
    finally:
        cluster.stop()


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def private_schema(prefix: str = "t") -> Iterator[str]:
    """The SQLAlchemy URL of a new schema in the machine's PostgreSQL, dropped afterwards."""
    require(_pg_available(), f"PostgreSQL at {PG_DSN}")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A fresh schema in the machine's PostgreSQL, dropped at the end of the session."""
    with private_schema() as url:
        yield url


#: The warehouses the parametrised tests run on; the Apache Kafka leg of `make test` runs PostgreSQL only
#: (the broker, not the database, is what that leg varies).
WAREHOUSES = [w for w in os.environ.get("FEEDBACK_TEST_WAREHOUSES", "sqlite,postgresql").split(",") if w]


@pytest.fixture(scope="session", params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('wh') / 'warehouse.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture(scope="session")
def warehouse(warehouse_url: str) -> Iterator[Engine]:
    engine = make_engine(warehouse_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pipeline(kafka_bootstrap: str, warehouse_url: str, warehouse: Engine,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The three components running against the session broker and the warehouse under test."""
    workdir: Path = tmp_path_factory.mktemp("pipeline")
    p = Pipeline(kafka_bootstrap, warehouse_url, warehouse, workdir)
    p.start_all()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[Pipeline, int]]:
    """A pipeline on its own embedded broker, which the test may kill and start again (``.broker_proc``)."""
    with restartable_pipeline(tmp_path) as started:
        yield started


@contextmanager
def restartable_pipeline(tmp_path: Path, **env: str) -> Iterator[tuple[Pipeline, int]]:
    """:func:`restartable` with extra environment for its components."""
    port = broker.free_port()
    proc = broker.start(port)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    p = Pipeline(f"127.0.0.1:{port}", url, make_engine(url), tmp_path)
    p.env["FEEDBACK_PUBLISH_TIMEOUT_SECONDS"] = "3"
    p.env.update(env)
    p.start_all()
    p.broker_proc = proc  # type: ignore[attr-defined]
    try:
        yield p, port
    finally:
        p.stop()
        p.broker_proc.kill()  # type: ignore[attr-defined]


def stop_broker(p: Pipeline) -> None:
    """Kill the broker of a :func:`restartable` pipeline (it forgets everything) and wait until it is gone."""
    p.broker_proc.kill()  # type: ignore[attr-defined]
    p.broker_proc.wait()  # type: ignore[attr-defined]


def start_broker(p: Pipeline, port: int) -> None:
    """Start the broker of a :func:`restartable` pipeline again on ``port``: back, and empty."""
    p.broker_proc = broker.start(port)  # type: ignore[attr-defined]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    require(CHROMIUM is not None, "Debian package chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def table_names(engine: Engine) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(engine).get_table_names())


__all__ = ["table_names", "text"]


@pytest.fixture(scope="module")
def dovecot() -> Iterator[dv.Dovecot]:
    """A private Dovecot IMAP server (Debian's dovecot-imapd) for the module's tests."""
    require(dv.available(), "Dovecot (apt-get install dovecot-imapd)")
    server = dv.Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.close()
