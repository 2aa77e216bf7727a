"""The observation path without Kafka: enrichment and event-time windows over a finite set of records.

What ``feedback backtest`` replays through (looked up by the entry point ``feedback.offline_signals``,
so the alert sink never imports the processors): the same :class:`~processors.enrich.Enricher` the
processor runs, the same :class:`Observation` and :class:`WindowAggregator`, one partition, and a
watermark raised past the last record at the end, so every window closes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.errors import RecordError
from pipeline.schema import EnrichedFeedback, FeedbackRecord
from pipeline.signal_schema import SignalWindow
from processors.signals.windows import Observation, WindowAggregator, window_specs

CHUNK = 2000
_WORKER: Any = None


def _init_worker() -> None:
    global _WORKER
    from pipeline.config import ProcessorSettings, load
    from processors.enrich import Enricher

    _WORKER = Enricher.from_settings(load(ProcessorSettings))


def _enrich_chunk(records: list[FeedbackRecord]) -> list[EnrichedFeedback | str]:
    out: list[EnrichedFeedback | str] = []
    for r in records:
        try:
            out.append(_WORKER.enrich(r))
        except (RecordError, ValueError) as exc:
            out.append(str(exc)[:300])
    return out


@dataclass(frozen=True)
class ObservationRow:
    """A stored record as the windows need it (``--from-warehouse``: no enrichment again)."""

    feedback_id: str
    event_time: datetime
    label: str
    score: float
    nps_class: str | None
    csat: int | None
    scopes: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, feedback_id: str, event_time: datetime, label: str, score: float, nps_class: str | None,
           csat: int | None, source: str, channel: str | None, categories: Iterable[str],
           product: str | None) -> ObservationRow:
        """The scopes a stored record counts in, as :func:`~processors.signals.windows.scopes_of` makes them."""
        scopes: list[tuple[str, str]] = [("overall", "all"), ("source", source)]
        if channel:
            scopes.append(("channel", channel))
        scopes += [("category", c) for c in dict.fromkeys(categories)]
        if product:
            scopes.append(("product", product))
        return cls(feedback_id, event_time, label, score, nps_class, csat, tuple(scopes))


class OfflineSignals:
    """Enrich records and close their windows offline, deterministically (the processor's own code)."""

    def __init__(self, window: int = 3600, slow_window: int = 86400, slow_scopes: Iterable[str] = ("product",),
                 workers: int | None = None) -> None:
        self.specs = window_specs(window, slow_window, slow_scopes)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))

    stored = staticmethod(ObservationRow.of)

    def enrich(self, records: list[FeedbackRecord]) -> Iterator[EnrichedFeedback | str]:
        """Each record enriched, in order; a record the enricher refuses yields its reason instead."""
        chunks = [records[i:i + CHUNK] for i in range(0, len(records), CHUNK)]
        if self.workers == 1 or len(chunks) <= 1:
            _init_worker()
            for chunk in chunks:
                yield from _enrich_chunk(chunk)
            return
        with ProcessPoolExecutor(self.workers, initializer=_init_worker) as pool:
            for result in pool.map(_enrich_chunk, chunks):
                yield from result

    def windows(self, items: Iterable[EnrichedFeedback | ObservationRow]) -> list[SignalWindow]:
        """Every window of these records, closed, oldest first (records in any order)."""
        observations = []
        for item in items:
            if isinstance(item, ObservationRow):
                observations.append(Observation(feedback_id=item.feedback_id, event_time=item.event_time.timestamp(),
                                                partition=0, label=item.label, polarity=item.score,
                                                nps_class=item.nps_class, csat=item.csat, scopes=item.scopes))
            elif not getattr(item, "is_ticket_state", False):
                observations.append(Observation.from_enriched(item, partition=0))
        observations.sort(key=lambda o: o.event_time)
        agg = WindowAggregator(self.specs, lateness=0.0, partitions=1)
        out: list[SignalWindow] = []
        for offset, obs in enumerate(observations):
            agg.apply(obs, offset)
            if offset % 1000 == 999:
                out += agg.advance()
        out += agg.advance()
        if observations:
            out += agg.force_watermark(observations[-1].event_time + max(s.seconds for s in self.specs) + 1)
        return out
