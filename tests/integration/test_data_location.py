"""One data location: the CLI run from other folders (real processes, a real SQLite warehouse) finds the
pipeline's data through FEEDBACK_DATA_DIR or the files `feedback up` writes, and a command that reads
never creates a warehouse or a key: it refuses with exit 2 and says where it looked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import UpSettings
from pipeline.data_location import PROJECT_LOCATION_FILE, user_location_file
from pipeline.schema import customer_ref
from pipeline.supervisor import Supervisor
from sinks.warehouse.db import make_engine, migrate
from tests.integration.warehouse_data import populate, today

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def feedback(args: list[str], cwd: Path, home: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """``feedback ARGS`` as a separate process in ``cwd``, with no FEEDBACK_* setting but ``extra`` and a
    private user config folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env |= {"XDG_CONFIG_HOME": str(home), "FEEDBACK_LOG_FORMAT": "console", "PYTHONPATH": str(ROOT), **extra}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("project", "elsewhere", "home")}
    for path in out.values():
        path.mkdir()
    (out["project"] / "docs").mkdir()
    return out


def since() -> str:
    return (today().date().replace(day=1)).isoformat()


def test_read_commands_refuse_without_data_and_create_nothing(folders: dict[str, Path]) -> None:
    where, home = folders["elsewhere"], folders["home"]
    for args, says in ((["alerts", "list"], "no warehouse"),
                       (["report", "--since", since(), "--out", "r.html"], "no warehouse"),
                       (["purge", "--older-than", "400d", "--dry-run"], "no warehouse"),
                       (["erase", "--email", "ann@example.org", "--dry-run"], "no customer-hash key")):
        result = feedback(args, where, home)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        message, flat = " ".join(result.stderr.split()), "".join(result.stderr.split())
        assert says in message and str(where / "data") in flat and "FEEDBACK_DATA_DIR" in message, message
    survey = where.parent / "survey.csv"
    survey.write_text("id,score,comment\n1,9,Great\n")
    result = feedback(["import", str(survey), "--id", "id", "--nps", "score", "--text", "comment"], where, home)
    assert result.returncode == 2 and "no customer-hash key" in result.stderr, result.stderr
    dry = feedback(["import", str(survey), "--id", "id", "--nps", "score", "--text", "comment", "--dry-run"],
                   where, home)
    assert dry.returncode == 0 and "would publish 1" in dry.stderr, dry.stderr
    assert list(where.iterdir()) == [], "a read command created files"
    assert not (home / "feedback").exists()


def test_up_records_the_location_and_every_folder_finds_it(folders: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere, home = folders["project"], folders["elsewhere"], folders["home"]
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in [k for k in os.environ if k.startswith("FEEDBACK_")]:
        monkeypatch.delenv(name)
    settings = UpSettings()
    assert settings.data_dir == project / "data"
    sup = Supervisor(settings, with_broker=False)
    settings.data_dir.mkdir()
    sup._record_data_location()  # what `feedback up` does at start
    assert (project / PROJECT_LOCATION_FILE).is_file() and user_location_file().is_file()
    key = settings.customer_key(create=True)  # the pipeline's key, made once by `feedback up`
    engine = make_engine(settings.database_url)
    migrate(engine)
    data = populate(engine, n=300, days=20)
    engine.dispose()

    out = elsewhere / "r.html"
    result = feedback(["report", "--since", since(), "--out", str(out)], elsewhere, home)
    assert result.returncode == 0, result.stderr
    assert "Responses" in out.read_text()
    listed = feedback(["alerts", "list", "--alerts", "--json"], elsewhere, home)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == len(data.alerts)

    ref = next(i.customer_ref for i in data.items if i.customer_ref)
    own = [i for i in data.items if i.customer_ref == ref]
    for cwd in (elsewhere, project / "docs"):  # the user file; the project file from a subfolder
        erased = feedback(["erase", "--customer-ref", ref, "--dry-run", "--json"], cwd, home)
        assert erased.returncode == 0, erased.stderr
        summary = json.loads(erased.stdout.strip().splitlines()[-1])
        assert summary["deleted"]["feedback"] == len(own)
        assert str(project / "data") in summary["covered"]["data_dir"]
        assert "feedback" in summary["covered"]["tables"] and summary["covered"]["customer_refs"] == 1
    origin = json.loads(feedback(["erase", "--customer-ref", ref, "--dry-run", "--json"], project / "docs",
                                 home).stdout.strip().splitlines()[-1])["covered"]["data_dir"]
    assert str(project / PROJECT_LOCATION_FILE) in origin

    # an e-mail is hashed with the pipeline's key, found from elsewhere (never a new key)
    hashed = feedback(["erase", "--email", "ann@example.org", "--dry-run", "--json"], elsewhere, home)
    covered = json.loads(hashed.stdout.strip().splitlines()[-1])["covered"]
    assert covered["key"] == str(project / "data" / "customer_hash.key")
    assert (project / "data" / "customer_hash.key").read_text().strip().encode() == key
    assert customer_ref("ann@example.org", key).startswith("c_")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["r.html"]

    # FEEDBACK_DATA_DIR wins over the files
    empty = elsewhere / "other-data"
    refused = feedback(["alerts", "list"], project, home, FEEDBACK_DATA_DIR=str(empty))
    assert refused.returncode == 2 and "FEEDBACK_DATA_DIR" in refused.stderr and not empty.exists()


def test_a_user_file_pointing_at_a_removed_folder_is_ignored(folders: dict[str, Path]) -> None:
    elsewhere, home = folders["elsewhere"], folders["home"]
    location = home / "feedback" / "location.toml"
    location.parent.mkdir()
    location.write_text(f'data_dir = "{folders["project"] / "gone"}"\n')
    result = feedback(["alerts", "list"], elsewhere, home)
    assert result.returncode == 2 and str(elsewhere / "data") in "".join(result.stderr.split())


def test_a_broken_location_file_is_named_not_skipped(folders: dict[str, Path]) -> None:
    project, home = folders["project"], folders["home"]
    (project / PROJECT_LOCATION_FILE).write_text("data_dir = \n")
    result = feedback(["report", "--since", since()], project / "docs", home)
    message = "".join(result.stderr.split())  # the terminal may wrap a long path anywhere
    assert result.returncode == 2 and str(project / PROJECT_LOCATION_FILE) in message, message
    assert not (project / "docs" / "data").exists()
