"""requirements.lock (``make lock``) pins every runtime dependency of pyproject.toml with its hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M)}
    # every pin is followed by at least one hash line
    assert len(re.findall(r"^\S+==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M)) == len(pins)
    return pins


def test_every_runtime_dependency_is_pinned_and_allowed_by_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} vs {req.specifier}"


def test_the_lock_carries_no_dev_tool_and_no_local_index() -> None:
    pins = locked()
    text = (ROOT / "requirements.lock").read_text()
    assert "pytest" not in pins and "ruff" not in pins  # the product's dependencies only
    assert "--find-links" not in text and "--index-url" not in text
