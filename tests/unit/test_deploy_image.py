"""deploy/Dockerfile and .dockerignore, without a Docker engine: the Dockerfile is parsed by
``dockerfile-parse``, the build context is computed with the Docker SDK's own .dockerignore rules, and
the build stage's install step is replayed for real (``pip wheel`` of exactly the files the build
stage copies) to prove the image would contain every module and data file the CLI needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

from tests.unit.test_deploy_cli import cli_command

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PACKAGES = ("pipeline", "connectors", "processors", "sinks")
DATA_SUFFIXES = (".yaml", ".json", ".html", ".mako", ".ini")


def _stages() -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for item in DockerfileParser(path=str(DOCKERFILE)).structure:
        if item["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(item)
    return stages


def _context() -> set[str]:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    paths = exclude_paths(str(ROOT), patterns, dockerfile="deploy/Dockerfile")
    return {p for p in paths if (ROOT / p).is_file()}


def _values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_multi_stage_slim_non_root_with_the_cli_as_entry_point() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    assert parser.is_multistage
    assert "slim" in parser.baseimage
    build, runtime = _stages()
    assert build[0]["value"].endswith(" AS build") and runtime[0]["value"].endswith(" AS runtime")
    assert any(v.startswith("--from=build /opt/venv") for v in _values(runtime, "COPY"))
    user = _values(runtime, "USER")[-1]
    assert user.split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert json.loads(_values(runtime, "ENTRYPOINT")[-1]) == ["feedback"]
    assert json.loads(_values(runtime, "CMD")[-1]) == ["--help"]
    env = " ".join(_values(runtime, "ENV"))
    assert "FEEDBACK_METRICS_HOST=0.0.0.0" in env and "FEEDBACK_HTTP_HOST=0.0.0.0" in env
    for line in DOCKERFILE.read_text().splitlines():  # the commands the header documents exist
        if line.startswith("#   docker run IMAGE "):
            for command in line.removeprefix("#   docker run IMAGE ").split(" | "):
                cli_command(command.split())


def test_the_image_exposes_every_port_the_deployments_use() -> None:
    exposed = {int(p) for v in _values(_stages()[1], "EXPOSE") for p in v.split()}
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    used = set()
    for svc in compose["services"].values():
        for key, value in (svc.get("environment") or {}).items():
            if key.startswith("FEEDBACK_") and key.endswith("_PORT") and value:
                used.add(int(value))
    assert used and used <= exposed, f"ports used but not exposed: {used - exposed}"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    context = _context()
    assert {"pyproject.toml", "README.md", "pipeline/cli.py", "processors/taxonomy.yaml"} <= context
    leaked = [f for f in context if f.startswith((".venv/", ".git/", "data/", "tests/", "deploy/.env"))
              or f.endswith((".pyc", ".env")) or "__pycache__" in f]
    assert not leaked, leaked


@pytest.mark.timeout(180)
def test_the_build_stage_install_yields_every_module_and_data_file(tmp_path: Path) -> None:
    """Replay the build stage: copy what its COPY lines take from the context, build the wheel."""
    context = _context()
    src = tmp_path / "src"
    src.mkdir()
    build = _stages()[0]
    for value in _values(build, "COPY"):
        *sources, dest = value.split()
        assert not any(s.startswith("--") for s in sources), value
        for source in sources:
            files = [f for f in context if f == source or f.startswith(source.rstrip("/") + "/")]
            assert files, f"COPY {source}: nothing in the build context (see .dockerignore)"
            for f in files:
                rel = Path(f) if dest in ("./", ".") else Path(dest) / Path(f).relative_to(source)
                target = src / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, target)
    assert any("pip install ." in v for v in _values(build, "RUN"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("feedback_pipeline-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "feedback = pipeline.cli:main" in zf.read(entry_points).decode()
    wanted = {f for f in context if f.startswith(PACKAGES) and f.endswith((".py", *DATA_SUFFIXES))}
    missing = sorted(wanted - names)
    assert not missing, f"files the image would lack (package-data in pyproject.toml?): {missing[:20]}"
    assert "sinks/warehouse/migrations/versions/0001_initial.py" in names
