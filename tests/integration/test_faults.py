"""Faults the warehouse sink must survive with nothing lost and nothing twice.

- a private PostgreSQL (Debian's initdb/pg_ctl) stopped and started again mid-stream;
- the SQLite file's disk full, then freed; the file system read-only, then writable again.
Each ends with an exact count.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import free_port
from pipeline.config import CommonSettings
from pipeline.publisher import Publisher
from pipeline.schema import FeedbackRecord
from sinks.warehouse.db import make_engine
from tests.conftest import require
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1] if glob.glob("/usr/lib/postgresql/*/bin") else None


def as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    cmd = list(argv)
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, which the test may stop and start."""

    def __init__(self) -> None:
        assert PG_BIN is not None
        self.dir = Path(tempfile.mkdtemp(prefix="feedback-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        as_postgres(f"{PG_BIN}/initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"),
                    "-w", "start")

    def stop(self) -> None:
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    require(PG_BIN is not None and shutil.which("runuser") is not None, "Debian postgresql (initdb, pg_ctl)")
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


def produce(pipeline: Pipeline, run: str, total: int) -> None:
    pub = Publisher(CommonSettings(kafka_bootstrap=pipeline.bootstrap, topic_prefix=pipeline.prefix))
    try:
        records = [FeedbackRecord(source_ref=f"{run}-{i}", text=f"Order {i}: the courier was late again")
                   for i in range(total)]
        for start in range(0, total, 500):
            pub.publish(records[start:start + 500])
    finally:
        pub.close()


def sink_only_pipeline(kafka_bootstrap: str, url: str, workdir: Path) -> Pipeline:
    p = Pipeline(kafka_bootstrap, url, make_engine(url), workdir)
    p.env["FEEDBACK_SINK_BATCH_SIZE"] = "200"
    p.env["FEEDBACK_SINK_MAX_BACKOFF_SECONDS"] = "2"
    p.start_all()
    return p


def test_postgres_down_mid_stream(kafka_bootstrap: str, private_pg: PrivatePostgres, tmp_path: Path) -> None:
    p = sink_only_pipeline(kafka_bootstrap, private_pg.url, tmp_path)
    try:
        run, total = f"pgdown-{uuid.uuid4().hex[:6]}", 3000
        produce(p, run, total)
        where = f"source_ref LIKE '{run}-%'"
        wait_for(lambda: p.count(where) > 0, 60, interval=0.05, what="first rows")
        private_pg.stop()
        p.engine.dispose()
        wait_for(lambda: p.metric("sink", "feedback_sink_errors_total") > 0, 30, what="sink noticing the outage")
        assert p.procs["sink"].poll() is None, "the sink must back off, not die"
        private_pg.start()
        wait_for(lambda: p.count(where) == total, 120, what=f"{total} rows after the database returned")
        assert p.count(where) == total
        assert "warehouse write failed; retrying" in p.log("sink")
    finally:
        p.stop()


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 16 MiB tmpfs the test can fill up and remount read-only."""
    mnt = Path(tempfile.mkdtemp(prefix="feedback-fs-"))
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                        capture_output=True).returncode == 0
    require(ok, "permission to mount a tmpfs (root in the test machine)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


def test_sqlite_disk_full_then_read_only(kafka_bootstrap: str, small_fs: Path, tmp_path: Path) -> None:
    db = small_fs / "warehouse.db"
    p = sink_only_pipeline(kafka_bootstrap, f"sqlite:///{db}", tmp_path)
    try:
        run = f"disk-{uuid.uuid4().hex[:6]}"
        # fill the disk, then send feedback: the sink must report it clearly and keep the records
        filler = small_fs / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
        produce(p, run + "-a", 1500)
        wait_for(lambda: p.metric("sink", "feedback_sink_errors_total", kind="disk_full") > 0, 60,
                 what="disk-full errors counted by the sink")
        assert "disk is full" in p.log("sink")
        assert p.procs["sink"].poll() is None
        filler.unlink()
        where_a = f"source_ref LIKE '{run}-a-%'"
        wait_for(lambda: p.count(where_a) == 1500, 120, what="rows after space was freed")

        # now the file system is read-only when the sink starts (remounting needs no writer open)
        p.kill("sink", signal.SIGTERM)
        p.engine.dispose()  # the test's own connections must not hold the file open for writing
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
        p.start("sink")
        produce(p, run + "-b", 500)
        wait_for(lambda: p.metric("sink", "feedback_sink_errors_total", kind="read_only") > 0, 60,
                 what="read-only errors counted by the sink")
        assert "is read-only" in p.log("sink")
        assert p.procs["sink"].poll() is None
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
        where_b = f"source_ref LIKE '{run}-b-%'"
        wait_for(lambda: p.count(where_b) == 500, 120, what="rows after the file system became writable")
        assert p.count(where_a) == 1500 and p.count(where_b) == 500
    finally:
        p.stop()
        p.engine.dispose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute(f"SELECT count(*) FROM feedback WHERE source_ref LIKE '{run}-%'").fetchone()[0] == 2000
