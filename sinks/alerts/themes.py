"""Emerging themes: complaints clustered offline, outside the taxonomy and inside each category.

The texts are the stored non-positive feedback tagged ``other`` (nothing in the taxonomy matched),
or tagged one taxonomy category, since a date. They are clustered with scikit-learn on TF-IDF (word
1-2 grams, English stop words; k-means with a fixed seed, the number of clusters with the best
silhouette): no network, no model download. Each theme gets a readable label (its three heaviest key
phrases), an id that is a UUIDv5 of the sorted top key phrases (the same complaint gets the same id
on every run), its size, its share of the recent week against before (growth) and a few example
texts. Shares are always within the texts clustered: a theme inside ``delivery`` is measured against
``delivery``'s own complaints, so a category whose every cluster grows alike shows no growth.

A theme **emerges** when it holds at least ``min_recent`` texts of the last week and at least
``min_share`` of that week's complaints of its scope, and before that week it held less than a fifth
of that share (:func:`emerging`). The hourly watch that opens, attaches and resolves incidents for
them is :mod:`sinks.alerts.theme_watch`; ``feedback themes [--category NAME]`` lists them on demand.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, or_, select

from sinks.alerts.incidents import utc
from sinks.warehouse.models import Feedback, FeedbackCategory

THEME_NAMESPACE = uuid.UUID("9a4c3e61-2f7b-5d18-a0c6-7e2b5f1d8c43")
RECENT = timedelta(days=7)
#: History a watch needs before anything can emerge (the recent week and at least one week before it).
MIN_SPAN = timedelta(days=14)
OTHER = "other"
#: Emerging when a theme holds this many texts and this share of the last week's complaints ...
MIN_RECENT, MIN_SHARE = 10, 0.10
#: ... and quiet (its incident resolves) below this fraction of both.
QUIET = 0.5
#: A category is clustered by the watch only with this many complaints in the last week: below it a
#: theme of ``MIN_RECENT`` would be most of the category (the category itself, not a cluster inside it).
MIN_CATEGORY = 2 * MIN_RECENT


@dataclass
class Theme:
    """One cluster of complaints (``other`` or one category's): stable id, label, size, growth, examples."""

    theme_id: uuid.UUID
    label: str
    phrases: list[str]
    size: int
    recent: int
    recent_share: float
    earlier_share: float
    first_seen: datetime
    recent_since: datetime
    examples: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float | None:
        """Recent share over earlier share (None when it was absent before)."""
        return self.recent_share / self.earlier_share if self.earlier_share > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"theme_id": str(self.theme_id), "label": self.label, "phrases": self.phrases, "size": self.size,
                "recent": self.recent, "recent_share": round(self.recent_share, 4),
                "earlier_share": round(self.earlier_share, 4), "growth": self.growth,
                "first_seen": self.first_seen.isoformat(), "recent_since": self.recent_since.isoformat(),
                "examples": self.examples}


def other_complaints(conn: Connection, since: datetime, category: str = OTHER) -> list[tuple[datetime, str]]:
    """(event time, text) of the non-positive feedback tagged ``category`` (default ``other``) since ``since``."""
    f, fc = Feedback.__table__, FeedbackCategory.__table__
    tagged = exists().where(fc.c.feedback_id == f.c.feedback_id, fc.c.category == category)
    rows = conn.execute(select(f.c.event_time, f.c.text).where(
        f.c.event_time >= since, f.c.sentiment_label != "positive",
        or_(f.c.primary_category == category, tagged)).order_by(f.c.event_time))
    return [(utc(t) or since, str(x)) for t, x in rows if x and x.strip()]


def category_counts(conn: Connection, since: datetime) -> dict[str, int]:
    """Non-positive complaints with text per taxonomy category (not ``other``) since ``since``: one
    grouped query, so a quiet category costs the watch nothing more."""
    f, fc = Feedback.__table__, FeedbackCategory.__table__
    complaint = (f.c.event_time >= since, f.c.sentiment_label != "positive", f.c.text != "")
    counts: dict[str, int] = {}
    tagged = select(fc.c.category, func.count(func.distinct(f.c.feedback_id))).join(
        f, f.c.feedback_id == fc.c.feedback_id).where(*complaint).group_by(fc.c.category)
    primary = select(f.c.primary_category, func.count()).where(*complaint, f.c.primary_category.is_not(None)) \
        .group_by(f.c.primary_category)
    for stmt in (tagged, primary):
        for name, n in conn.execute(stmt):
            if name and name != OTHER:
                counts[str(name)] = max(counts.get(str(name), 0), int(n))
    return counts


def cluster(items: list[tuple[datetime, str]], min_size: int = 5, seed: int = 0) -> list[Theme]:
    """Themes of these texts, largest first (clusters smaller than ``min_size`` are dropped)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(items) < 2 * min_size:
        return []
    texts = [t for _, t in items]
    vec = TfidfVectorizer(ngram_range=(1, 2), stop_words="english", min_df=2, max_df=0.5, sublinear_tf=True)
    try:
        x = vec.fit_transform(texts)
    except ValueError:  # nothing left after the stop words
        return []
    _, labels = _best_k(x, len(texts) // min_size, seed)
    labels = _merge_similar(x, labels)
    terms = vec.get_feature_names_out()
    latest = max(t for t, _ in items)
    recent_total = sum(1 for t, _ in items if t > latest - RECENT) or 1
    earlier_total = max(1, len(items) - recent_total)
    out = []
    for c in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == c]
        if len(idx) < min_size:
            continue
        weights = x[idx].mean(axis=0).A1
        phrases = [str(terms[j]) for j in weights.argsort()[::-1][:3] if weights[j] > 0]
        recent = sum(1 for i in idx if items[i][0] > latest - RECENT)
        common = Counter(texts[i].strip()[:300] for i in idx).most_common(3)
        out.append(Theme(theme_id=uuid.uuid5(THEME_NAMESPACE, "|".join(sorted(phrases))), label=", ".join(phrases),
                         phrases=phrases, size=len(idx), recent=recent, recent_share=recent / recent_total,
                         earlier_share=(len(idx) - recent) / earlier_total,
                         first_seen=min(items[i][0] for i in idx),
                         recent_since=min((items[i][0] for i in idx if items[i][0] > latest - RECENT), default=latest),
                         examples=[t for t, _ in common]))
    return sorted(out, key=lambda t: -t.size)


def _best_k(x: Any, most: int, seed: int) -> tuple[int, Any]:
    """k-means with the number of clusters (2-20) whose clustering has the best silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best: tuple[float, int, Any] | None = None
    for k in sorted({c for c in (2, 4, 6, 8, 10, 12, 15, 20) if c <= max(2, most)}):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x).labels_
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(x, labels, sample_size=min(2000, x.shape[0]), random_state=seed))
        if best is None or score > best[0]:
            best = (score, k, labels)
    if best is None:
        return 1, [0] * x.shape[0]
    return best[1], best[2]


def _merge_similar(x: Any, labels: Any, threshold: float = 0.4) -> list[int]:
    """Join clusters whose centroids' cosine similarity exceeds ``threshold`` (k-means splits a theme)."""
    import numpy as np

    ids = sorted(set(int(v) for v in labels))
    cents = np.vstack([np.asarray(x[[i for i, v in enumerate(labels) if v == c]].mean(axis=0)).ravel()
                       for c in ids])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    sim = cents @ cents.T
    parent = {c: c for c in ids}

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            if sim[a, b] > threshold:
                parent[root(ids[b])] = root(ids[a])
    return [root(int(v)) for v in labels]


def emerging(themes: list[Theme], min_recent: int = MIN_RECENT, min_share: float = MIN_SHARE) -> list[Theme]:
    """The themes that rose from (almost) nothing to a noticeable share of the last week."""
    return [t for t in themes if t.recent >= min_recent and t.recent_share >= min_share
            and t.earlier_share < t.recent_share / 5]


def themes_since(engine: Engine, since: datetime, category: str = OTHER) -> list[Theme]:
    """The themes of the complaints tagged ``category`` since ``since`` (``other``: outside the taxonomy;
    a category's name: new clusters inside it)."""
    with engine.connect() as conn:
        return cluster(other_complaints(conn, since, category))
