"""``feedback import-mbox``: an archive backfilled through the real CLI, broker and warehouse."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.schema import derive_feedback_id
from tests.bench import email_samples as samples
from tests.bench.email_samples import wire
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


def _import(pipeline: Pipeline, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", "import-mbox", str(path), *args],
                          env=pipeline.env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_import_mbox_then_rerun(pipeline: Pipeline, tmp_path: Path) -> None:
    dom = f"mbox{uuid.uuid4().hex[:8]}.example"
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(str(path))
    messages = [wire(samples.plain(f"Archived complaint {i}: the refund never came.", msgid=f"<a{i}@{dom}>"))
                for i in range(5)]
    messages += [messages[0]]  # the same message twice in one archive
    messages += [wire(samples.auto_reply(msgid=f"<auto@{dom}>")), wire(samples.bounce(msgid=f"<bounce@{dom}>"))]
    messages += [f"From: cut@{dom}\nMessage-ID: <cut@{dom}>\nContent-Type: multipart/mixed; boundary=ZZZ\n\n"
                 "this archived message was cut before its first boundary".encode()]
    for raw in messages:
        box.add(raw)
    box.flush()
    box.close()

    cut_id = derive_feedback_id("email", f"cut@{dom}")
    first = _import(pipeline, path, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary == {"read": 9, "published": 5, "skipped": 2, "dead_lettered": 1, "duplicates": 1,
                       "skipped_by_reason": {"auto_reply": 1, "bounce": 1}}
    assert summary["read"] == sum(summary[k] for k in ("published", "skipped", "dead_lettered", "duplicates"))
    wait_for(lambda: pipeline.count(f"source_ref LIKE '%@{dom}'") == 5, 60, what="5 archived rows")
    row = pipeline.rows(f"source_ref = 'a3@{dom}'")[0]
    assert row["source"] == "email" and row["text"] == "Archived complaint 3: the refund never came."
    letters = pipeline.dead_letters(lambda d: d.stage == "email" and d.feedback_id == cut_id)
    assert letters and letters[0].reason == "malformed_mime"
    assert "archive.mbox message 9" in letters[0].detail

    again = _import(pipeline, path, "--json")  # a re-run publishes nothing new
    assert json.loads(again.stdout) == {"read": 9, "published": 0, "skipped": 2, "dead_lettered": 1,
                                        "duplicates": 6, "skipped_by_reason": {"auto_reply": 1, "bounce": 1}}
    human = _import(pipeline, path)
    assert human.returncode == 0 and "already known 6" in human.stderr
    assert pipeline.count(f"source_ref LIKE '%@{dom}'") == 5


def test_import_missing_path_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "FEEDBACK_DATA_DIR": str(tmp_path), "FEEDBACK_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    result = subprocess.run([sys.executable, "-m", "pipeline", "import-mbox", str(tmp_path / "missing.mbox"),
                             "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no such file" in result.stderr and result.stdout == ""
