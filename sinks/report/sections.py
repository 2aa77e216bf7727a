"""Report sections that depend on optional tables (aspects, alerts) and the "what changed" summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, and_, case, func, or_, select

from sinks.report.data import Aspect, C, F, Kpis, ReportData
from sinks.warehouse.models import Feedback, FeedbackCategory

EXAMPLE_CHARS = 240
EXAMPLES_PER_ASPECT = 2
#: Fewest assessed mentions a category needs before its change of negative share is reported.
MIN_CHANGE_SAMPLE = 20


def _clip(text: str, redact: Any) -> str:
    text = " ".join(text.split())
    if redact is not None:
        text = redact(text)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _aspects_table(conn: Any, tables: set[str]) -> Table | None:
    """The sentence-level aspects table (revision 0003), reflected, when this warehouse has it."""
    if "feedback_aspects" not in tables:
        return None
    return Table("feedback_aspects", MetaData(), autoload_with=conn)


def aspects(conn: Any, data: ReportData, tables: set[str], top: int, redact: Any) -> None:
    """Top negative aspects: sentence-level aspects when the warehouse has them, else categories."""
    table = _aspects_table(conn, tables)
    label_col = next((c for c in ("sentiment_label", "label") if table is not None and c in table.c), None)
    if table is not None and label_col and {"category", "feedback_id"} <= set(table.c.keys()):
        a: Any = table.c
        sentence = a.text if "text" in a else None
        base = table.join(Feedback.__table__, F.feedback_id == a.feedback_id)
        label: Any = a[label_col]
        data.aspects_source = "aspects"
    else:
        a = C  # same interface: .category, .feedback_id
        sentence = None
        base = FeedbackCategory.__table__.join(Feedback.__table__, F.feedback_id == C.feedback_id)
        label = F.sentiment_label
    negative = func.sum(case((label == "negative", 1), else_=0))
    mentions = func.sum(case((label != "not_assessed", 1), else_=0))

    def counts(since: datetime, until: datetime) -> dict[str, tuple[int, int]]:
        stmt = (select(a.category, negative.label("negative"), mentions.label("mentions")).select_from(base)
                .where(F.event_time >= since, F.event_time < until).group_by(a.category))
        return {r.category: (int(r.negative or 0), int(r.mentions or 0)) for r in conn.execute(stmt)}

    now, before = counts(data.since, data.until), counts(data.previous_since, data.since)
    ranked = sorted(((c, n, m) for c, (n, m) in now.items() if n > 0), key=lambda x: (-x[1], x[0]))[:top]
    for category, neg, total in ranked:
        text_col = sentence if sentence is not None else F.text
        rows = conn.execute(
            select(text_col).select_from(base)
            .where(a.category == category, label == "negative", F.event_time >= data.since, F.event_time < data.until)
            .order_by(F.event_time.desc()).limit(EXAMPLES_PER_ASPECT * 3)).scalars()
        examples: list[str] = []
        for text in rows:
            clipped = _clip(text or "", redact)
            if clipped and clipped not in examples:
                examples.append(clipped)
            if len(examples) >= EXAMPLES_PER_ASPECT:
                break
        data.aspects.append(Aspect(category, neg, total, before.get(category, (0, 0))[0], examples))


def alerts(conn: Any, data: ReportData, tables: set[str]) -> None:
    """Alerts opened, acknowledged or resolved in the period, with their operators' notes."""
    if not {"alerts", "alert_history"} <= tables:
        return
    alerts_table = Table("alerts", MetaData(), autoload_with=conn)  # reflected: the columns this warehouse has
    A, H = alerts_table.c, Table("alert_history", MetaData(), autoload_with=conn).c
    data.alerts_available = True

    def within(col: Any) -> Any:
        return and_(col >= data.since, col < data.until)

    rows = conn.execute(select(alerts_table).where(or_(
        within(A.opened_at), within(A.acknowledged_at), within(A.resolved_at))).order_by(A.opened_at)).all()
    counts = {"opened": 0, "acknowledged": 0, "resolved": 0}
    for r in rows:
        notes = conn.execute(select(H.at, H.actor, H.action, H.note).where(
            H.alert_id == r.alert_id, H.note.is_not(None)).order_by(H.at)).all()
        for name, at in (("opened", r.opened_at), ("acknowledged", r.acknowledged_at), ("resolved", r.resolved_at)):
            when = _utc(at)
            if when is not None and data.since <= when < data.until:
                counts[name] += 1
        data.alerts.append({
            "signal": r.signal, "scope": f"{r.scope_type}: {r.scope_value}", "severity": r.severity,
            "status": r.status, "opened_at": _utc(r.opened_at), "acknowledged_at": _utc(r.acknowledged_at),
            "acknowledged_by": r.acknowledged_by, "resolved_at": _utc(r.resolved_at), "resolved_by": r.resolved_by,
            "summary": r.summary, "observed": r.observed, "expected": r.expected,
            "notes": [{"at": _utc(n.at), "actor": n.actor, "action": n.action, "note": n.note} for n in notes],
        })
    data.alert_counts = counts


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _delta(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def what_changed(data: ReportData) -> list[tuple[str, str]]:
    """Short sentences comparing this period with the previous one, each with a tone (good/bad/neutral)."""
    cur, prev = data.current, data.previous
    out: list[tuple[str, str]] = []
    if cur.volume == 0:
        return [("neutral", "No feedback was received in this period.")]
    if prev.volume:
        change = 100.0 * (cur.volume - prev.volume) / prev.volume
        if abs(change) < 1:
            out.append(("neutral", f"Feedback volume was steady ({prev.volume:,} → {cur.volume:,})."))
        else:
            out.append(("neutral", f"Feedback volume {'rose' if change >= 0 else 'fell'} {abs(change):.0f}% "
                                   f"({prev.volume:,} → {cur.volume:,})."))
    else:
        out.append(("neutral", f"{cur.volume:,} responses; the previous period had none to compare with."))
    d = _delta(cur.nps, prev.nps)
    if d is not None and abs(d) >= 1:
        out.append(("good" if d > 0 else "bad",
                    f"NPS {'improved' if d > 0 else 'dropped'} {abs(d):.0f} points to {cur.nps:+.0f}."))
    elif cur.nps is not None:
        out.append(("neutral", f"NPS held steady at {cur.nps:+.0f}."))
    d = _delta(cur.csat_pct, prev.csat_pct)
    if d is not None and abs(d) >= 1:
        out.append(("good" if d > 0 else "bad",
                    f"CSAT {'rose' if d > 0 else 'fell'} {abs(d):.0f} points to {cur.csat_pct:.0f}% satisfied."))
    d = _delta(cur.negative_share, prev.negative_share)
    if d is not None and abs(d) >= 1:
        out.append(("bad" if d > 0 else "good",
                    f"Negative feedback {'up' if d > 0 else 'down'} {abs(d):.0f} points to {cur.negative_share:.0f}%."))
    movers = []
    for cat, (neg, ass, pneg, pass_) in data.category_totals.items():
        if ass >= MIN_CHANGE_SAMPLE and pass_ >= MIN_CHANGE_SAMPLE:
            movers.append((100.0 * neg / ass - 100.0 * pneg / pass_, cat, 100.0 * neg / ass))
    movers.sort(key=lambda m: -abs(m[0]))
    for diff, cat, share in movers[:2]:
        if abs(diff) >= 5:
            out.append(("bad" if diff > 0 else "good",
                        f"{label(cat)}: negative share {'up' if diff > 0 else 'down'} {abs(diff):.0f} points "
                        f"to {share:.0f}%."))
    new_aspects = [a.category for a in data.aspects[:5] if a.previous_negative == 0]
    if new_aspects:
        out.append(("bad", "New among the top complaints: " + ", ".join(label(c) for c in new_aspects) + "."))
    if data.alerts_available:
        opened = data.alert_counts.get("opened", 0)
        resolved = data.alert_counts.get("resolved", 0)
        out.append(("bad" if opened else "good",
                    f"{opened} alert{'s' if opened != 1 else ''} opened, {resolved} resolved."))
    return out


ACRONYMS = {"nps": "NPS", "csat": "CSAT"}


def label(category: str) -> str:
    """A category or signal name as people read it: ``customer_support`` -> ``Customer support``."""
    return ACRONYMS.get(category) or category.replace("_", " ").capitalize()


__all__ = ["Kpis", "alerts", "aspects", "label", "what_changed"]
