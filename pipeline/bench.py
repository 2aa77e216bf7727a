"""``feedback bench``: rerunnable benchmarks, each reported next to a baseline measured in the same run.

A stage is a function ``(BenchContext) -> list[Result]`` registered with :func:`stage`; the modules
listed in ``STAGE_MODULES`` are imported so their stages register themselves.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Modules holding ``@stage`` functions (each feature adds its own module here).
STAGE_MODULES: list[str] = []


@dataclass
class Result:
    """One measured figure; ``baseline`` is the same figure for the baseline of the same run."""

    stage: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


@dataclass
class BenchContext:
    records: int = 50_000
    workdir: Path = field(default_factory=lambda: Path("bench-results"))
    quick: bool = False


StageFn = Callable[[BenchContext], list[Result]]
STAGES: dict[str, StageFn] = {}


def stage(name: str) -> Callable[[StageFn], StageFn]:
    def register(fn: StageFn) -> StageFn:
        STAGES[name] = fn
        return fn

    return register


def load_stages() -> dict[str, StageFn]:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return STAGES


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
