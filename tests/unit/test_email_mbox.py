"""Archive reading for ``feedback import-mbox``: mbox files, .eml folders, From-line dates, summaries."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.email.ingest import Summary
from connectors.email.mbox import count_messages, from_line_date, iter_messages
from pipeline.errors import ConfigError
from tests.bench import email_samples as samples


def test_from_line_date() -> None:
    assert from_line_date(b"From jane@x Tue Mar  3 10:00:00 2026\nSubject: x") == datetime(2026, 3, 3, 10,
                                                                                         tzinfo=UTC)
    assert from_line_date(b"Subject: no from line") is None
    assert from_line_date(b"From jane@x garbage\n") is None


def test_mbox_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(str(path))
    for i in range(3):
        box.add(samples.plain(f"message {i}", msgid=f"<m{i}@x>").as_bytes())
    box.flush()
    box.close()
    assert count_messages(path) == 3
    mails = list(iter_messages(path))
    assert [m.attributes["archive"] for m in mails] == ["archive.mbox"] * 3
    assert all(m.raw.startswith(b"From ") and b"Message-ID: <m" in m.raw for m in mails)


def test_eml_folder_with_and_without_from_lines(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.eml").write_bytes(samples.plain("a").as_bytes())
    (tmp_path / "sub" / "b.eml").write_bytes(b"From x@y Tue Mar  3 10:00:00 2026\n" + samples.plain("b").as_bytes())
    (tmp_path / "notes.txt").write_text("not mail")
    assert count_messages(tmp_path) == 2
    mails = list(iter_messages(tmp_path))
    assert [m.attributes["archive"] for m in mails] == ["a.eml", "sub/b.eml"]
    assert mails[1].internaldate == datetime(2026, 3, 3, 10, tzinfo=UTC)
    assert count_messages(tmp_path / "a.eml") == 1


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        list(iter_messages(tmp_path / "nope"))


def test_summary_adds_up() -> None:
    a = Summary(read=5, published=2, dead_lettered=1, duplicates=1)
    a.skipped_by_reason["bounce"] += 1
    b = Summary(read=3, published=3)
    a.add(b)
    d = a.as_dict()
    assert set(d) == {"read", "published", "skipped", "dead_lettered", "duplicates", "skipped_by_reason"}
    assert d["read"] == d["published"] + d["skipped"] + d["dead_lettered"] + d["duplicates"] == 8
