""""What changed since the previous period": only statements the data supports.

Guarantees: open incidents come first; a rise or fall of NPS, CSAT, the negative share or a category's
negative share is stated only when both periods have at least MIN_SAMPLE observations and the change is
beyond the 95 % noise band (Bonferroni-corrected over the comparisons made together); a figure with too
few observations says so instead of a number; a volume change is a percentage only when the previous
period had MIN_SAMPLE responses; while incidents are open nothing is called an improvement.
"""

from __future__ import annotations

from sinks.report import stats
from sinks.report.model import Kpis, Problem, ReportData, label, plural
from sinks.report.stats import MIN_SAMPLE, Estimate

#: How many category comparisons share one Bonferroni correction at most (the top ones by volume).
CATEGORY_TESTS = 8


def _volume(cur: Kpis, prev: Kpis) -> tuple[str, str]:
    who = f" from {plural(cur.customers, 'customer')}" if cur.customers else ""
    if prev.volume < MIN_SAMPLE:
        before = "none" if prev.volume == 0 else plural(prev.volume, "response")
        return "neutral", (f"{plural(cur.volume, 'response')}{who}; the previous period had {before}, "
                           "too few to compare.")
    change = 100.0 * (cur.volume - prev.volume) / prev.volume
    trend = "about the same as" if abs(change) < 5 else f"{abs(change):.0f}% {'more' if change > 0 else 'fewer'} than"
    return "neutral", f"{plural(cur.volume, 'response')}{who}, {trend} the previous period ({prev.volume:,})."


def _metric(name: str, now: Estimate, before: Estimate, higher_is_better: bool, unit: str, tests: int,
            still_open: str) -> tuple[str, str]:
    if not now.enough:
        return "neutral", f"{name}: {now.describe(unit)} this period."
    if not before.enough:
        return "neutral", f"{name} {now.describe(unit)}; the previous period had {plural(before.n, unit[:-1])}, " \
                          "too few to compare."
    assert now.value is not None and before.value is not None
    if not stats.changed(now, before, tests):
        return "neutral", (f"{name} {now.describe(unit)}: no change beyond noise from {before.figure()} "
                           f"(previous period, n = {before.n:,}).")
    diff = now.value - before.value
    points = f"{abs(diff):.0f} point{'s' if round(abs(diff)) != 1 else ''}"
    better = (diff > 0) == higher_is_better
    tone = "good" if better and not still_open else "neutral" if better else "bad"
    text = (f"{name} {'rose' if diff > 0 else 'fell'} {points} to {now.describe(unit)}, "
            f"from {before.figure()} (n = {before.n:,}); beyond the 95% noise band.")
    if better and still_open:
        text += f" {still_open} still open."
    return tone, text


def _categories(data: ReportData) -> list[tuple[str, str]]:
    movers = [(cat, stats.wilson(neg, ass), stats.wilson(pneg, pass_))
              for cat, (neg, ass, pneg, pass_) in data.category_totals.items()
              if ass >= MIN_SAMPLE and pass_ >= MIN_SAMPLE]
    movers.sort(key=lambda m: -m[1].n)
    movers = movers[:CATEGORY_TESTS]
    out = []
    for cat, now, before in movers:
        if stats.changed(now, before, tests=len(movers)):
            assert now.value is not None and before.value is not None
            up = now.value > before.value
            out.append(("bad" if up else "good" if not data.open_problems else "neutral",
                        f"{label(cat)}: negative share {'up' if up else 'down'} {abs(now.value - before.value):.0f} "
                        f"points to {now.describe('assessed mentions')}, from {before.figure()} (n = {before.n:,})."))
    return out


def what_changed(data: ReportData) -> list[tuple[str, str]]:
    """Short sentences, each with a tone (good, bad, neutral); see the module's guarantees."""
    cur, prev = data.current, data.previous
    out: list[tuple[str, str]] = []
    opened = data.open_problems
    if opened:
        drivers = ", ".join(sorted({p.driver for p in opened})[:4])
        out.append(("bad", f"{_problems(opened)} open: {drivers}."))
    if cur.volume == 0:
        return [*out, ("neutral", "No feedback was received in this period.")]
    out.append(_volume(cur, prev))
    metrics = [("NPS", cur.nps_estimate, prev.nps_estimate, True, "responses"),
               ("CSAT (share of 4-5 ratings)", cur.csat_estimate, prev.csat_estimate, True, "ratings"),
               ("Negative share", cur.negative_estimate, prev.negative_estimate, False, "assessed texts")]
    present = [m for m in metrics if m[1].n or m[2].n]
    for name, now, before, higher, unit in present:
        out.append(_metric(name, now, before, higher, unit, len(present), _problems(opened) if opened else ""))
    out += _categories(data)
    new_aspects = [a.category for a in data.aspects[:5]
                   if a.previous_mentions >= MIN_SAMPLE and a.previous_negative == 0 and a.negative >= 5]
    if new_aspects:
        out.append(("bad", "New among the top complaints (none before): "
                    + ", ".join(label(c) for c in new_aspects) + "."))
    if data.alerts_available:
        counts = data.alert_counts
        what = "incidents or alerts" if data.problems_source == "incidents" else "alerts"
        out.append(("bad" if counts.get("opened") else "neutral",
                    f"{counts.get('opened', 0)} {what} opened in the period, {counts.get('resolved', 0)} resolved."))
    return out


def _problems(items: list[Problem]) -> str:
    """``2 incidents and 1 alert``."""
    incidents = sum(1 for p in items if p.kind != "alert")
    parts = [plural(incidents, "incident")] if incidents else []
    if len(items) - incidents:
        parts.append(plural(len(items) - incidents, "alert"))
    return " and ".join(parts)
