"""Deterministic enriched feedback for warehouse benchmarks, tests and report previews.

Texts come from :mod:`tests.bench.data` (templates per category and mood); sentiment, categories,
aspects and NPS class are set as the processor would set them for that mood, so no processor runs.
``trend`` lets a caller skew the mood per day (e.g. delivery complaints rising in the last weeks).

Guarantees: the same arguments always give the same records (ids, texts, times); every record is
a valid :class:`~pipeline.schema.EnrichedFeedback`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pipeline.schema import Aspect, CategoryTag, EnrichedFeedback, Sentiment, nps_class
from tests.bench.data import CSAT_RANGE, FRAGMENTS, NPS_RANGE, PRODUCTS, SOURCES

#: Polarity range per mood (what the analyzer would roughly give).
POLARITY = {"negative": (-0.9, -0.15), "neutral": (-0.08, 0.08), "positive": (0.2, 0.9)}
CHANNELS = {"event": "crm", "webform": "form:default", "ticket": "helpdesk", "email": "mailbox:support"}
#: Mood weights (negative, neutral, positive) for a day and a category; the default is steady.
Trend = Callable[[int, str], tuple[float, float, float]]


def steady(_day: int, _category: str) -> tuple[float, float, float]:
    return (0.35, 0.25, 0.40)


def enriched_sample(n: int, *, seed: int = 7, start: datetime | None = None, days: int = 28,
                    run: str = "sample", customers: int | None = None, trend: Trend = steady,
                    with_aspects: bool = True) -> list[EnrichedFeedback]:
    """``n`` records spread evenly over ``days`` days from ``start`` (UTC midnight 28 days ago by default)."""
    rng = random.Random(seed)
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)
    refs = [f"c_{rng.getrandbits(128):032x}" for _ in range(customers or max(1, n // 8))]
    cats_all = [c for c in FRAGMENTS if c != "other"]
    out: list[EnrichedFeedback] = []
    span = days * 86400
    for i in range(n):
        offset = (i + rng.random()) * span / max(n, 1)
        day = int(offset // 86400)
        picked = rng.sample(cats_all, 2 if rng.random() < 0.3 else 1)
        weights = trend(day, picked[0])
        mood = rng.choices(["negative", "neutral", "positive"], weights=weights)[0]
        if mood not in FRAGMENTS[picked[0]]:
            mood = "neutral" if "neutral" in FRAGMENTS[picked[0]] else "positive"
        sentences = [rng.choice(FRAGMENTS[c].get(mood) or FRAGMENTS[c]["neutral"]) for c in picked]
        source = rng.choices([s for s, _ in SOURCES], weights=[w for _, w in SOURCES])[0]
        polarity = round(rng.uniform(*POLARITY[mood]), 3)
        nps = rng.randint(*NPS_RANGE[mood]) if rng.random() < 0.75 else None
        csat = rng.randint(*CSAT_RANGE[mood]) if rng.random() < 0.4 else None
        event_time = start + timedelta(seconds=offset)
        aspects = [
            Aspect(sentence=k, text=s, category=c, confidence=0.8, label=mood,  # type: ignore[arg-type]
                   score=polarity)
            for k, (s, c) in enumerate(zip(sentences, picked, strict=True))
        ] if with_aspects else []
        out.append(EnrichedFeedback(
            source=source,  # type: ignore[arg-type]
            channel=CHANNELS[source],
            source_ref=f"{run}-{i}",
            customer_ref=rng.choice(refs) if rng.random() < 0.8 else None,
            text=" ".join(sentences),
            language="en",
            nps_score=nps,
            csat_score=csat,
            product=rng.choice(PRODUCTS),
            tags=["sample"],
            event_time=event_time,
            received_at=event_time + timedelta(seconds=2),
            processed_at=event_time + timedelta(seconds=3),
            sentiment=Sentiment(polarity=polarity, subjectivity=0.5, label=mood,  # type: ignore[arg-type]
                                score=polarity, confidence=0.8),
            categories=[CategoryTag(name=c, confidence=round(0.9 - 0.2 * k, 2)) for k, c in enumerate(picked)],
            nps_class=nps_class(nps),
            aspects=aspects,
            detected_language="en",
            language_confidence=0.99,
        ))
    return out
