"""The emerging-theme watch: themes outside the taxonomy and new clusters inside a category, as incidents.

The alert sink calls :func:`run_watch` every ``FEEDBACK_ALERT_THEME_WATCH_SECONDS`` over the last
28 days of stored feedback (event time). It looks at the complaints tagged ``other`` and at every
taxonomy category with at least :data:`~sinks.alerts.themes.MIN_CATEGORY` complaints in the last week
(one grouped count; a quieter category is not clustered), plus any category whose theme incident is
still active (so it can go quiet). Each scope is clustered on its own (:func:`sinks.alerts.themes.cluster`),
so a theme's shares are within its scope: a category getting worse as a whole grows every cluster alike
and nothing inside it emerges. Nothing emerges from less than ``MIN_SPAN`` of a scope's history.

For each emerging theme (:func:`sinks.alerts.themes.emerging`) that has no incident yet (its id, or an
active theme incident of the same scope sharing a key phrase, key phrases reshuffle as complaints
arrive):

* ``other``: an ``emerging_theme`` incident driven by ``theme=<label>`` (id: UUIDv5 of the theme).
* inside category C while an incident driven by ``category=C`` is open or acknowledged: no second
  incident. The theme is *attached* to it: one ``note`` in its trail by ``detector`` (label, count,
  share of C's complaints, an example), delivered like any note, and its examples added to the
  incident's (up to :data:`EXAMPLES`). Once per theme (the note's key is the theme id, and a theme
  sharing a key phrase with one already noted is the same theme).
* inside category C otherwise: an ``emerging_theme`` incident driven by ``theme=C: <label>`` (id:
  UUIDv5 of the category and the theme), summary "... 12 complaints in the last week, 18% of
  delivery complaints, new this week ...".

An incident of a theme never reopens (its id is the theme's). The same watch resolves it (``resolved``
by ``detector``, the trail kept) once the theme goes quiet: no theme of its scope sharing a key phrase
holds half of both thresholds in the last week.

Cost (measured, docs/alerts.md): about 4 CPU-seconds per scope of 3,000 complaints; 41-42 CPU-seconds
for ``other`` and 10 categories of 3,000 each on a 2-core machine.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from sinks.alerts import themes
from sinks.alerts.incidents import IH, INC, _history, utc
from sinks.alerts.themes import OTHER, RECENT, Theme
from sinks.warehouse.models import Feedback

ACTIVE = ("open", "acknowledged")
#: An incident a theme is attached to shows at most this many examples.
EXAMPLES = 5
#: The note a theme attached to a category incident leaves in its trail starts with this.
ATTACHED = "Emerging theme"


@dataclass
class Seen:
    """One scope's clustering: ``other`` or a category, its complaints (event-time order) and themes."""

    scope: str
    items: list[tuple[datetime, str]]
    themes: list[Theme]


@dataclass
class Watched:
    """What one watch did: incidents opened, category incidents a theme was attached to, incidents resolved."""

    opened: list[uuid.UUID] = field(default_factory=list)
    attached: list[uuid.UUID] = field(default_factory=list)
    resolved: list[uuid.UUID] = field(default_factory=list)
    seconds: float = 0.0
    scopes: list[str] = field(default_factory=list)

    def add(self, other: Watched) -> None:
        self.opened += other.opened
        self.attached += other.attached
        self.resolved += other.resolved

    def __bool__(self) -> bool:
        return bool(self.opened or self.attached or self.resolved)


def split_driver(value: str) -> tuple[str, str]:
    """(scope, label) of a theme incident's driver value: ``delivery: a, b`` or ``a, b`` (``other``)."""
    scope, sep, label = value.partition(": ")
    return (scope, label) if sep else (OTHER, value)


def incident_id(scope: str, theme: Theme) -> uuid.UUID:
    """The theme's incident id: stable across runs; ``other`` keeps the ids it always had."""
    key = f"incident|{theme.theme_id}" if scope == OTHER else f"incident|{scope}|{theme.theme_id}"
    return uuid.uuid5(themes.THEME_NAMESPACE, key)


def active_themes(conn: Connection) -> dict[str, list[tuple[uuid.UUID, set[str]]]]:
    """The open or acknowledged theme incidents by scope, with their key phrases."""
    out: dict[str, list[tuple[uuid.UUID, set[str]]]] = {}
    for iid, value in conn.execute(select(INC.c.incident_id, INC.c.driver_scope_value).where(
            INC.c.kind == "emerging_theme", INC.c.status.in_(ACTIVE))):
        scope, label = split_driver(value)
        out.setdefault(scope, []).append((iid, set(label.split(", "))))
    return out


def scopes(conn: Connection, latest: datetime) -> list[str]:
    """``other``, then the categories busy enough to cluster or with an active theme incident."""
    busy = {c for c, n in themes.category_counts(conn, latest - RECENT).items() if n >= themes.MIN_CATEGORY}
    return [OTHER, *sorted((busy | set(active_themes(conn))) - {OTHER})]


def look(conn: Connection, scope: str, since: datetime, watched: bool = True) -> Seen:
    """Read and cluster one scope's complaints since ``since`` (reads only). Not clustered when nothing
    could come of it: less than ``MIN_SPAN`` of history (nothing emerges) and no active theme incident
    of the scope (``watched``: nothing to resolve) -- e.g. while a backfill is still arriving."""
    items = themes.other_complaints(conn, since, scope)
    if not watched and (not items or items[-1][0] - items[0][0] < themes.MIN_SPAN):
        return Seen(scope, items, [])
    return Seen(scope, items, themes.cluster(items))


def judge(conn: Connection, seen: Seen, now: datetime) -> Watched:
    """Resolve the scope's quiet theme incidents; open or attach one for each newly emerging theme."""
    out = Watched()
    active = active_themes(conn).get(seen.scope, [])
    latest = seen.items[-1][0] if seen.items else None
    out.resolved = settle_quiet(conn, active, seen.themes, latest, now)
    if latest is None or latest - seen.items[0][0] < themes.MIN_SPAN:
        return out
    watched = [phrases for iid, phrases in active if iid not in out.resolved]
    driver = _category_incident(conn, seen.scope) if seen.scope != OTHER else None
    for t in themes.emerging(seen.themes):
        iid = incident_id(seen.scope, t)
        if conn.execute(select(INC.c.incident_id).where(INC.c.incident_id == iid)).first() is not None:
            continue
        if any(set(t.phrases) & phrases for phrases in watched):
            continue  # the same theme, its key phrases reshuffled by newer complaints: already an incident
        watched.append(set(t.phrases))
        if driver is not None:
            if attach(conn, driver, seen.scope, t, now) and driver not in out.attached:
                out.attached.append(driver)
            continue
        _open(conn, iid, seen.scope, t, now)
        out.opened.append(iid)
    return out


def _category_incident(conn: Connection, category: str) -> uuid.UUID | None:
    """The open or acknowledged incident driven by ``category=<category>`` (the earliest opened), if any."""
    return conn.execute(select(INC.c.incident_id).where(
        INC.c.driver_scope_type == "category", INC.c.driver_scope_value == category,
        INC.c.status.in_(ACTIVE)).order_by(INC.c.opened_at).limit(1)).scalar()


def _in_words(scope: str, t: Theme) -> str:
    growth = f"{t.growth:.1f}x its earlier share" if t.growth is not None else "new this week"
    where = "the complaints no category covers" if scope == OTHER else f"{scope} complaints"
    return f"{t.recent} complaints in the last week, {t.recent_share:.0%} of {where}, {growth}"


def _open(conn: Connection, iid: uuid.UUID, scope: str, t: Theme, now: datetime) -> None:
    started = t.first_seen if t.earlier_share == 0 else t.recent_since  # event time of the rise
    inside = "" if scope == OTHER else f" inside {scope}"
    summary = f"Emerging complaint theme \u201c{t.label}\u201d{inside}: {_in_words(scope, t)}; {t.size} in all."
    value = t.label if scope == OTHER else f"{scope}: {t.label}"
    conn.execute(INC.insert().values(
        incident_id=iid, kind="emerging_theme", status="open", severity="warning", driver_scope_type="theme",
        driver_scope_value=value[:500], signals=["theme_share"], explained_share=None, started_at=started,
        opened_at=now, updated_at=now, observed=t.recent_share, expected=t.earlier_share, sample_size=t.recent,
        summary=summary, examples=t.examples))
    _history(conn, iid, "opened", "detector", now, key="opened")


def _noted(conn: Connection, iid: uuid.UUID) -> list[set[str]]:
    """Key phrases of the themes already attached to incident ``iid`` (from their notes)."""
    notes = conn.execute(select(IH.c.note).where(IH.c.incident_id == iid, IH.c.action == "note",
                                                 IH.c.actor == "detector")).scalars()
    found = (re.match(ATTACHED + " \u201c([^\u201d]*)\u201d", n or "") for n in notes)
    return [set(m.group(1).split(", ")) for m in found if m]


def attach(conn: Connection, iid: uuid.UUID, category: str, t: Theme, now: datetime) -> bool:
    """Note theme ``t`` in the trail of category incident ``iid`` and add its examples; once per theme."""
    if any(set(t.phrases) & phrases for phrases in _noted(conn, iid)):
        return False
    example = f"; e.g. \u201c{t.examples[0][:200]}\u201d" if t.examples else ""
    note = f"{ATTACHED} \u201c{t.label}\u201d inside {category}: {_in_words(category, t)}{example}"
    _history(conn, iid, "note", "detector", now, note=note, key=f"theme|{t.theme_id}")
    have = list(conn.execute(select(INC.c.examples).where(INC.c.incident_id == iid)).scalar() or [])
    more = [e for e in t.examples if e not in have][:max(0, EXAMPLES - len(have))]
    conn.execute(update(INC).where(INC.c.incident_id == iid).values(examples=have + more, updated_at=now))
    return True


def settle_quiet(conn: Connection, active: list[tuple[uuid.UUID, set[str]]], found: list[Theme],
                 latest: datetime | None, now: datetime) -> list[uuid.UUID]:
    """Resolve the active theme incidents of a scope whose theme went quiet: no theme of this run
    (same scope) shares a key phrase with it, or the one that does holds less than half the emerging
    thresholds in the last week (event time). The incident keeps its trail; a ``resolved`` event goes
    to the outbox."""
    resolved = []
    for iid, phrases in active:
        alive = [t for t in found if phrases & set(t.phrases)]
        quiet = themes.QUIET
        if any(t.recent >= quiet * themes.MIN_RECENT and t.recent_share >= quiet * themes.MIN_SHARE for t in alive):
            continue
        recent = max((t.recent for t in alive), default=0)
        conn.execute(update(INC).where(INC.c.incident_id == iid).values(
            status="resolved", resolved_at=now, resolved_by="detector", updated_at=now, observed=None,
            sample_size=recent))
        week = f" in the week to {latest:%Y-%m-%d}" if latest else ""
        _history(conn, iid, "resolved", "detector", now, key="resolved",
                 note=f"theme went quiet: {recent} complaints{week}")
        resolved.append(iid)
    return resolved


def watch(conn: Connection, since: datetime, now: datetime) -> Watched:
    """One watch on one connection: every scope (see the module) read, clustered and judged."""
    latest = utc(conn.execute(select(func.max(Feedback.__table__.c.event_time))).scalar())
    out = Watched()
    if latest is None:
        return out
    out.scopes = scopes(conn, latest)
    watched = set(active_themes(conn))
    for scope in out.scopes:
        out.add(judge(conn, look(conn, scope, since, scope in watched), now))
    return out


def run_watch(engine: Engine, days: int = 28) -> Watched:
    """One watch over the last ``days`` of stored feedback, in event time (a backfill is watched too).

    Each scope is read on its own connection and judged in a short transaction of its own: the
    clustering never holds a write lock the warehouse sink waits for."""
    began = time.monotonic()
    out = Watched()
    with engine.connect() as conn:
        latest = utc(conn.execute(select(func.max(Feedback.__table__.c.event_time))).scalar())
        if latest is None:
            return out
        since = latest - timedelta(days=days)
        out.scopes = scopes(conn, latest)
        watched = set(active_themes(conn))
    now = datetime.now(UTC)
    for scope in out.scopes:
        with engine.connect() as conn:
            seen = look(conn, scope, since, scope in watched)
        with engine.begin() as conn:
            out.add(judge(conn, seen, now))
    out.seconds = time.monotonic() - began
    return out


def describe(out: Watched) -> dict[str, Any]:
    """The watch's outcome for a log line."""
    return {"opened": [str(i) for i in out.opened], "attached": [str(i) for i in out.attached],
            "resolved": [str(i) for i in out.resolved], "scopes": out.scopes, "seconds": round(out.seconds, 2)}
