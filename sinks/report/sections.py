"""Report sections that read optional tables or need example comments: top negative aspects, what
promoters praise next to what detractors complain about, and open incidents (or alerts) with their
drivers and examples. Every example comment is redacted again before it is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, and_, case, func, or_, select, true

from sinks.report.model import Aspect, Problem, ReportData, Voice
from sinks.warehouse.models import Feedback, FeedbackCategory

F = Feedback.__table__.c
C = FeedbackCategory.__table__.c
EXAMPLE_CHARS = 240
EXAMPLES_PER_ASPECT = 2
VOICE_TOPICS = 5
#: Scope types of an alert or incident driver that are columns of the feedback table.
SCOPE_COLUMNS = ("source", "channel", "product")


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
        data.aspects.append(Aspect(category, neg, total, *before.get(category, (0, 0)), examples))


def _examples(conn: Any, where: Any, redact: Any, limit: int, join_categories: bool = False) -> list[str]:
    base: Any = Feedback.__table__
    if join_categories:
        base = base.join(FeedbackCategory.__table__, C.feedback_id == F.feedback_id)
    rows = conn.execute(select(F.text).select_from(base).where(where, F.text != "")
                        .order_by(F.event_time.desc()).limit(limit * 4)).scalars()
    out: list[str] = []
    for text in rows:
        clipped = _clip(text or "", redact)
        if clipped and clipped not in out:
            out.append(clipped)
        if len(out) >= limit:
            break
    return out


def voices(conn: Any, data: ReportData, redact: Any) -> None:
    """What promoters praise (their positive comments' categories) next to what detractors complain
    about (their negative comments' categories), each with counts out of the group's responses."""
    in_period = and_(F.event_time >= data.since, F.event_time < data.until)
    joined = Feedback.__table__.join(FeedbackCategory.__table__, C.feedback_id == F.feedback_id)
    for group, klass, mood in (("promoters", "promoter", "positive"), ("detractors", "detractor", "negative")):
        responses = conn.execute(select(func.count()).where(in_period, F.nps_class == klass)).scalar_one()
        voice = Voice(group, int(responses or 0))
        topic = and_(in_period, F.nps_class == klass, F.sentiment_label == mood)
        rows = conn.execute(select(C.category, func.count(func.distinct(F.feedback_id)).label("n"))
                            .select_from(joined).where(topic).group_by(C.category))
        voice.topics = sorted(((r.category, int(r.n)) for r in rows), key=lambda x: (-x[1], x[0]))[:VOICE_TOPICS]
        for category, _ in voice.topics[:3]:
            voice.examples[category] = _examples(conn, and_(topic, C.category == category), redact, 1,
                                                 join_categories=True)
        data.voices.append(voice)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # a reflected SQLite column may come back as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _scope_filter(scope_type: str, scope_value: str) -> tuple[Any, bool] | None:
    """The feedback rows of an alert's or incident's scope, and whether the categories must be joined;
    None for a scope the feedback table cannot select (a theme: its stored examples stand)."""
    if scope_type in SCOPE_COLUMNS:
        return F[scope_type] == scope_value, False
    if scope_type == "category":
        return C.category == scope_value, True
    return (true(), False) if scope_type == "overall" else None


def problems(conn: Any, data: ReportData, tables: set[str], redact: Any) -> None:
    """Incidents, and alerts that belong to no incident (all alerts without the incidents table): every
    one still open (whenever it started) and those opened, acknowledged or resolved in the period;
    open ones first, the most severe first."""
    sources = [s for s in ("incidents", "alerts") if {s, f"{s[:-1]}_history"} <= tables]
    if not sources:
        return
    data.problems_source = sources[0]
    counts = {"opened": 0, "acknowledged": 0, "resolved": 0, "open": 0}
    for source in sources:
        table = Table(source, MetaData(), autoload_with=conn)  # reflected: the columns this warehouse has
        T, H = table.c, Table(f"{source[:-1]}_history", MetaData(), autoload_with=conn).c
        key = "incident_id" if source == "incidents" else "alert_id"
        linked = T.incident_id.is_(None) if source == "alerts" and "incident_id" in T else true()

        def within(col: Any) -> Any:
            return and_(col >= data.since, col < data.until)

        rows = conn.execute(select(table).where(linked, T.opened_at < data.until, or_(
            T.status != "resolved", within(T.opened_at), within(T.acknowledged_at), within(T.resolved_at)))
            .order_by(T.opened_at)).all()
        for r in rows:
            for name, at in (("opened", r.opened_at), ("acknowledged", r.acknowledged_at),
                             ("resolved", r.resolved_at)):
                when = _utc(at)
                counts[name] += int(when is not None and data.since <= when < data.until)
            counts["open"] += int(r.status != "resolved")
            problem = _problem(conn, r, source, redact)
            notes = conn.execute(select(H.at, H.actor, H.action, H.note).where(
                H[key] == r._mapping[key], H.note.is_not(None)).order_by(H.at)).all()
            problem.notes = [{"at": _utc(n.at), "actor": n.actor, "action": n.action, "note": n.note} for n in notes]
            data.problems.append(problem)
    rank = {"critical": 0, "warning": 1, "info": 2}
    data.problems.sort(key=lambda p: (not p.open, rank.get(p.severity, 3), p.started_at or data.since))
    data.alert_counts = counts


def _problem(conn: Any, r: Any, source: str, redact: Any) -> Problem:
    if source == "incidents":
        scope_type, scope_value = r.driver_scope_type, r.driver_scope_value
        signals = [str(s.get("signal", s)) if isinstance(s, dict) else str(s) for s in (r.signals or [])]
        started, stored = _utc(r.started_at), [_clip(e, redact) for e in (r.examples or [])]
        kind, share = r.kind, r.explained_share
    else:
        scope_type, scope_value = r.scope_type, r.scope_value
        signals, started, stored, kind, share = [r.signal], _utc(r.first_window_start), [], "alert", None
    examples = stored[:EXAMPLES_PER_ASPECT]
    scope = _scope_filter(scope_type, scope_value)
    if not examples and scope is not None:
        where, join = scope
        since = started or _utc(r.opened_at)
        examples = _examples(conn, and_(where, F.sentiment_label == "negative", F.event_time >= since),
                             redact, EXAMPLES_PER_ASPECT, join_categories=join)
    return Problem(kind=kind, status=r.status, severity=r.severity, driver=f"{scope_type}: {scope_value}",
                   signals=signals, summary=r.summary, started_at=started, opened_at=_utc(r.opened_at),
                   resolved_at=_utc(r.resolved_at), observed=r.observed, expected=r.expected,
                   sample_size=r.sample_size, explained_share=share, acknowledged_by=r.acknowledged_by,
                   resolved_by=r.resolved_by, examples=examples)


__all__ = ["aspects", "problems", "voices"]
