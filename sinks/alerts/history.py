"""What the detector keeps of a scope: the figures of a window, the verdict on each signal, and the
judged windows of one scope and window size (pure, no I/O)."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.signal_schema import SignalWindow

#: Recent judged windows the over-dispersion factor is estimated from (and the fewest it needs).
PHI_WINDOWS = 60
#: What the count charts carry from one window to the next (:mod:`sinks.alerts.cusum`, :mod:`sinks.alerts.charts`).
CARRIED = ("cusum", "run_start", "run_n", "run_neg", "run_sum")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """The figures of one closed window the detector needs (a view of :class:`SignalWindow`)."""

    start: float
    seconds: int
    volume: int
    negative: int = 0
    sentiment_mean: float | None = None
    sentiment_std: float | None = None
    nps_responses: int = 0
    promoters: int = 0
    detractors: int = 0
    csat_responses: int = 0
    csat_mean: float | None = None
    csat_std: float | None = None
    assessed: int | None = None  # responses with a sentiment (not ``not_assessed``); None: all of them

    @property
    def sentiment_n(self) -> int:
        """The responses behind the sentiment signals (negative share, mean sentiment)."""
        return self.volume if self.assessed is None else self.assessed

    @classmethod
    def of(cls, w: SignalWindow) -> WindowStats:
        return cls(start=w.window_start.timestamp(), seconds=w.window_seconds, volume=w.volume,
                   assessed=w.negative + w.neutral + w.positive,
                   negative=w.negative, sentiment_mean=w.sentiment_mean, sentiment_std=w.sentiment_std,
                   nps_responses=w.nps_responses, promoters=w.promoters, detractors=w.detractors,
                   csat_responses=w.csat_responses, csat_mean=w.csat_mean, csat_std=w.csat_std)


@dataclass
class Detection:
    """The verdict on one signal of one window: in | out | low_volume | cold_start | off."""

    signal: str
    state: str
    value: float | None = None
    expected: float | None = None
    sigma: float | None = None
    z: float | None = None
    z_raw: float | None = None  # before the over-dispersion factor: what calibrates that factor
    phi: float | None = None
    ewma: float = 0.0
    ewma_limit: float | None = None
    severity: str | None = None
    rule: str | None = None  # when out: "shewhart" (this window jumped) or "ewma" (a persistent shift)
    baseline: str | None = None
    baseline_windows: int = 0
    sample_size: int = 0
    # the count chart (:mod:`sinks.alerts.cusum`): its statistic, limit, baseline and the current run
    cusum: float | None = None
    cusum_limit: float | None = None
    p0: float | None = None
    run_start: float | None = None
    run_n: int | None = None
    run_neg: int | None = None
    run_sum: float | None = None  # the score charts' run: the sum of the run's scores

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k in self.__dataclass_fields__ if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Detection:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True)
class Entry:
    """A judged window as the history keeps it: its figures and, per signal, the verdict."""

    stats: WindowStats
    detection: dict[str, dict[str, Any]]


class History:
    """The judged windows of one scope and window size, by start time (what the baseline draws on)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.items: dict[float, Entry] = {}
        self.order: list[float] = []
        self._raw: dict[str, deque[float]] = {}
        self._ewma: dict[str, float] = {}
        self._carry: dict[str, dict[str, Any]] = {}
        for e in entries:
            self.add(e)

    def add(self, entry: Entry) -> None:
        start = entry.stats.start
        if self.order and start <= self.order[-1]:
            raise ValueError("windows must be added in time order")
        slim: dict[str, dict[str, Any]] = {}
        for signal, d in entry.detection.items():
            if not isinstance(d, dict):
                continue
            if d.get("state") == "in" and d.get("z_raw") is not None:
                self._raw.setdefault(signal, deque(maxlen=PHI_WINDOWS)).append(float(d["z_raw"]))
            if "ewma" in d:
                self._ewma[signal] = float(d["ewma"])
            if "cusum" in d:
                self._carry[signal] = {k: d.get(k) for k in CARRIED}
            slim[signal] = {"state": d.get("state")}  # all the baseline needs of older windows
        self.items[start] = Entry(entry.stats, slim)
        self.order.append(start)

    @property
    def last_start(self) -> float | None:
        return self.order[-1] if self.order else None

    def trim(self, keep_after: float) -> None:
        cut = bisect.bisect_left(self.order, keep_after)  # the order is sorted: no scan of the whole history
        for s in self.order[:cut]:
            del self.items[s]
        del self.order[:cut]

    def raw_scores(self, signal: str) -> list[float]:
        """The latest in-control windows' unadjusted z-scores, oldest first (at most ``PHI_WINDOWS``)."""
        return list(self._raw.get(signal, ()))

    def carry(self, signal: str) -> dict[str, Any]:
        """The count chart's state after the latest window (empty before the first)."""
        return self._carry.get(signal, {})

    def ewma(self, signal: str) -> float:
        """The EWMA the next window continues from (0 before the first judged window)."""
        return self._ewma.get(signal, 0.0)
