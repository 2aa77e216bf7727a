"""Deterministic, realistic benchmark feedback: short customer texts from templates, a seeded RNG.

Guarantees: the same ``(n, seed, run)`` always gives the same records (times excepted: they are set
when a record is sent, see :func:`stamp`); every record is a valid :class:`FeedbackRecord`; the mix
covers the three sentiment moods, every shipped category, NPS/CSAT scores that agree with the mood
and four sources. No outside data is used.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.schema import FeedbackRecord

Mood = str  # "negative" | "neutral" | "positive"

#: Sentences per category and mood (praise has no negative side, "other" matches no category).
FRAGMENTS: dict[str, dict[Mood, list[str]]] = {
    "billing": {
        "negative": ["I was charged twice for my order and still have no refund.",
                     "The invoice shows a fee I never agreed to.",
                     "Your billing system overcharged my credit card again."],
        "neutral": ["Could you send me a copy of last month's invoice?",
                    "I changed my payment method to direct debit."],
        "positive": ["The refund reached my account quickly, thanks.",
                     "Billing is clear and the receipt came right away."],
    },
    "delivery": {
        "negative": ["The parcel arrived four days late and tracking never updated.",
                     "My package was delivered to the wrong address.",
                     "Still waiting for my order after two weeks, the courier lost it."],
        "neutral": ["The package arrived on Tuesday as announced.",
                    "Delivery took the usual three days."],
        "positive": ["Delivery was fast and the courier was very friendly.",
                     "The parcel arrived a day early, great job."],
    },
    "product_quality": {
        "negative": ["The kettle stopped working after a week.",
                     "The case cracked on the first day, very poor quality.",
                     "It arrived damaged and the lid is leaking."],
        "neutral": ["Build quality is what you would expect at this level."],
        "positive": ["Excellent build quality, it feels solid.",
                     "Quality is superb, nothing has broken in a year."],
    },
    "usability": {
        "negative": ["The new interface is confusing and hard to use.",
                     "I can't find the export button anywhere, navigation is a mess."],
        "neutral": ["The settings page changed its layout in the last update."],
        "positive": ["The app is easy to use and very intuitive.",
                     "Navigation is clean and user friendly."],
    },
    "performance_reliability": {
        "negative": ["The app keeps crashing when I open my orders.",
                     "Pages take forever to load and checkout times out.",
                     "Another outage this morning, the site went down for an hour."],
        "neutral": ["Loading times are about the same as before."],
        "positive": ["Since the update it is fast and has not crashed once."],
    },
    "customer_support": {
        "negative": ["Nobody answered my emails and I waited on hold for forty minutes.",
                     "Support never replied to my ticket.",
                     "The agent was rude and closed my case without a fix."],
        "neutral": ["I called the hotline and was told to wait for a callback."],
        "positive": ["The support team solved my problem in minutes, wonderful service.",
                     "Your agent was patient and really helpful."],
    },
    "pricing": {
        "negative": ["The subscription is far too expensive for what it offers.",
                     "Another price increase with hidden fees, not acceptable."],
        "neutral": ["The price is similar to other shops."],
        "positive": ["Great value for money at this price.",
                     "Affordable and cheaper than the competition."],
    },
    "account_login": {
        "negative": ["I am locked out of my account and the password reset link is broken.",
                     "I cannot log in since the two-factor change."],
        "neutral": ["I updated the email address on my account."],
        "positive": ["Signing in with the new login page is quick and smooth."],
    },
    "feature_request": {
        "negative": ["The missing export feature makes the tool useless for my team."],
        "neutral": ["It would be nice to have dark mode.",
                    "Could you add an integration with our calendar?"],
        "positive": ["I would love a widget for the home screen, the rest is perfect."],
    },
    "praise": {
        "neutral": ["Thanks for the quick answer."],
        "positive": ["Amazing experience, highly recommend!", "Keep it up, you are doing a brilliant job.",
                     "Very happy with everything, well done."],
    },
    "other": {
        "negative": ["Really disappointed this time.", "This was the worst experience I have had."],
        "neutral": ["I moved to a new flat last month.", "My neighbour told me about you."],
        "positive": ["Everything was fine, I am glad I chose you."],
    },
}
OPENERS = ["", "", "", "Hi, ", "Hello team, ", "Honestly, ", "Quick note: ", "FYI: "]
CLOSERS: dict[Mood, list[str]] = {
    "negative": ["", "", " Please fix this.", " Very frustrating.", " I expect a reply."],
    "neutral": ["", "", " Regards.", " Thanks."],
    "positive": ["", "", " Thanks!", " Keep it up."],
}
MOODS: list[tuple[Mood, float]] = [("negative", 0.40), ("neutral", 0.25), ("positive", 0.35)]
SOURCES: list[tuple[str, float]] = [("event", 0.40), ("webform", 0.30), ("ticket", 0.20), ("email", 0.10)]
PRODUCTS = ["mobile app", "web shop", "smart kettle", "premium plan", "headphones", "router", None]
NPS_RANGE: dict[Mood, tuple[int, int]] = {"negative": (0, 6), "neutral": (5, 8), "positive": (7, 10)}
CSAT_RANGE: dict[Mood, tuple[int, int]] = {"negative": (1, 2), "neutral": (3, 4), "positive": (4, 5)}


@dataclass(frozen=True)
class BenchRecord:
    """One generated record: its Kafka key, its JSON-ready fields and how old the event is."""

    key: bytes
    fields: dict[str, Any]
    event_age_s: float
    mood: Mood
    categories: tuple[str, ...]


def _weighted(rng: random.Random, pairs: list[tuple[str, float]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def compose(rng: random.Random) -> tuple[str, Mood, tuple[str, ...]]:
    """One short customer text with its intended mood and categories."""
    mood = _weighted(rng, MOODS)
    names = [c for c, moods in FRAGMENTS.items() if mood in moods]
    picked = rng.sample(names, 2 if rng.random() < 0.3 else 1)
    sentences = [rng.choice(FRAGMENTS[c][mood]) for c in picked]
    text = rng.choice(OPENERS) + " ".join(sentences) + rng.choice(CLOSERS[mood])
    return text, mood, tuple(picked)


def generate(n: int, seed: int = 1, run: str = "bench") -> list[BenchRecord]:
    """``n`` deterministic records; ``source_ref`` is ``{run}-{i}`` so each run has its own ids."""
    rng = random.Random(seed)
    customers = [f"c_{rng.getrandbits(128):032x}" for _ in range(max(1, n // 10))]
    out = []
    for i in range(n):
        text, mood, cats = compose(rng)
        source = _weighted(rng, SOURCES)
        nps = rng.randint(*NPS_RANGE[mood]) if rng.random() < 0.75 else None
        csat = rng.randint(*CSAT_RANGE[mood]) if rng.random() < 0.4 else None
        record = FeedbackRecord(
            source=source,  # type: ignore[arg-type]
            channel={"event": "crm", "webform": "form:default", "ticket": "helpdesk",
                     "email": "mailbox:support"}[source],
            source_ref=f"{run}-{i}",
            customer_ref=rng.choice(customers) if rng.random() < 0.8 else None,
            text=text,
            language="en",
            nps_score=nps,
            csat_score=csat,
            product=rng.choice(PRODUCTS),
            tags=["bench"],
        )
        fields = record.model_dump(mode="json", exclude={"event_time", "received_at"})
        out.append(BenchRecord(record.key, fields, round(rng.uniform(0, 3600), 3), mood, cats))
    return out


def stamp(records: list[BenchRecord], now: datetime) -> list[tuple[bytes, bytes]]:
    """Kafka ``(key, value)`` pairs of full records received ``now`` (what a connector publishes)."""
    received = now.isoformat()
    return [
        (r.key, json.dumps({**r.fields, "event_time": (now - timedelta(seconds=r.event_age_s)).isoformat(),
                            "received_at": received}).encode())
        for r in records
    ]


def event_payload(record: BenchRecord, now: datetime) -> dict[str, Any]:
    """The ``POST /v1/events`` body of one record: no id, no receipt time (the service sets both)."""
    body = {k: v for k, v in record.fields.items()
            if v not in (None, [], {}) and k not in ("feedback_id", "schema_version")}
    body["event_time"] = (now - timedelta(seconds=record.event_age_s)).isoformat()
    return body
