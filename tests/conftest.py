"""Shared test helpers. Under CI=true a missing service fails the test instead of skipping it."""

from __future__ import annotations

import os

import pytest


def require(condition: bool, what: str) -> None:
    """Fail (CI) or skip (a developer's machine) when a required service or tool is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service missing: {what}", pytrace=False)
    pytest.skip(f"service missing: {what}")
