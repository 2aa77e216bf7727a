"""The report's charts: matplotlib (Agg) figures embedded as base64 SVG data URIs (no external files).

Every chart function returns a :class:`Chart` even without data (then a figure that says so), so
the page always has the same sections and a test can check that each is there.
"""

from __future__ import annotations

import base64
import io
import math
import zlib
from dataclasses import dataclass
from datetime import date

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sinks.report.model import ReportData, label
from sinks.report.stats import MIN_SAMPLE, Estimate

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
BLUE = "#2f6fde"
GREEN = "#1f9d55"
RED = "#d64545"
TOP_CATEGORIES = 6
#: A colour per known category, the same in every report; other names get one from a hash of the name.
CATEGORY_COLOURS = {
    "billing": "#2f6fde", "delivery": "#f0a202", "product_quality": "#1f9d55", "usability": "#7c5cc4",
    "performance_reliability": "#d64545", "customer_support": "#12a4b6", "pricing": "#e56b9b",
    "account_login": "#8d6e3f", "feature_request": "#5c7cfa", "praise": "#2b8a3e", "other": "#9aa5b1",
}
EXTRA_COLOURS = ["#495057", "#c2255c", "#0b7285", "#5f3dc4", "#e67700", "#2f9e44", "#364fc7", "#a61e4d"]


def colour(category: str) -> str:
    """The category's colour: fixed for the taxonomy's categories, stable (a hash of the name) for others."""
    return CATEGORY_COLOURS.get(category) or EXTRA_COLOURS[zlib.crc32(category.encode()) % len(EXTRA_COLOURS)]


@dataclass
class Chart:
    """One embedded chart: ``uri`` is a ``data:image/svg+xml;base64,...`` URI."""

    id: str
    title: str
    caption: str
    uri: str
    has_data: bool


def _style() -> None:
    plt.rcParams.update({
        "font.family": "DejaVu Sans", "font.size": 9, "axes.edgecolor": GRID, "axes.labelcolor": MUTED,
        "xtick.color": MUTED, "ytick.color": MUTED, "axes.titlesize": 10, "axes.spines.top": False,
        "axes.spines.right": False, "svg.fonttype": "none", "legend.frameon": False,
    })


def _figure(height: float = 2.9) -> tuple[Figure, Axes]:
    _style()
    fig, ax = plt.subplots(figsize=(8.6, height), dpi=100)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _empty(chart_id: str, title: str, caption: str, message: str) -> Chart:
    fig, ax = _figure(1.4)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, fontsize=11, transform=ax.transAxes)
    return Chart(chart_id, title, caption, _uri(fig), False)


def _ticks(ax: Axes, buckets: list[date], bucket: str) -> None:
    fmt = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}[bucket]
    step = max(1, math.ceil(len(buckets) / 12))
    ax.set_xticks(range(0, len(buckets), step))
    ax.set_xticklabels([b.strftime(fmt) for b in buckets][::step])
    ax.set_xlim(-0.6, len(buckets) - 0.4)


def _series(data: ReportData, estimate: str) -> tuple[list[Estimate | None], int]:
    """Per bucket: the estimate when the bucket has enough responses, else None; and how many were hidden."""
    out: list[Estimate | None] = []
    hidden = 0
    for b in data.buckets:
        e = getattr(data.trend[b], estimate) if b in data.trend else None
        if e is not None and e.enough:
            out.append(e)
        else:
            hidden += int(e is not None and e.n > 0)
            out.append(None)
    return out, hidden


def _band(ax: Axes, points: list[Estimate | None], colour_: str) -> tuple[list[int], list[float]]:
    xs = [i for i, p in enumerate(points) if p is not None]
    ok = [p for p in points if p is not None]
    ys = [float(p.value) for p in ok if p.value is not None]
    ax.fill_between(xs, [float(p.low or 0) for p in ok], [float(p.high or 0) for p in ok], color=colour_,
                    alpha=0.15, linewidth=0, label="95% interval")
    ax.plot(xs, ys, color=colour_, linewidth=2.2, marker="o", markersize=3.5)
    return xs, ys


def _counts(bars: Axes, counts: list[int], data: ReportData) -> None:
    bars.bar(range(len(counts)), counts, color=["#c5d6f5" if c >= MIN_SAMPLE else "#e4e7eb" for c in counts],
             width=0.7)
    bars.axhline(MIN_SAMPLE, color=MUTED, linewidth=0.7, linestyle=":")
    bars.set_ylabel("n", fontsize=8)
    bars.set_yticks([0, max([*counts, MIN_SAMPLE])])
    _ticks(bars, data.buckets, data.bucket)


def _trend(data: ReportData, chart_id: str, title: str, what: str, estimate: str, counts_of: str,
           colour_: str, limits: tuple[float, float], ylabel: str) -> Chart:
    points, hidden = _series(data, estimate)
    caption = (f"{what} per {data.bucket} with its 95% interval (band); bars: responses per {data.bucket} "
               f"(grey, below {MIN_SAMPLE}: not drawn)")
    if hidden:
        caption += f"; {hidden} {data.bucket}(s) with too few responses left out"
    if not any(points):
        total = sum(getattr(k, counts_of) for k in data.trend.values())
        return _empty(chart_id, title, caption, f"Not enough data: {total} responses in the period, "
                      f"fewer than {MIN_SAMPLE} in every {data.bucket}")
    _style()
    fig, (ax, bars) = plt.subplots(2, 1, figsize=(8.6, 3.0), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [4, 1], "hspace": 0.08})
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    _band(ax, points, colour_)
    shown = [p for p in points if p is not None]
    low = min(float(p.low if p.low is not None else limits[0]) for p in shown)
    high = max(float(p.high if p.high is not None else limits[1]) for p in shown)
    pad = max(5.0, (high - low) * 0.15)
    ax.set_ylim(max(limits[0], low - pad), min(limits[1], high + pad))
    if ax.get_ylim()[0] < 0 < ax.get_ylim()[1]:
        ax.axhline(0, color=MUTED, linewidth=0.8)
    ax.set_ylabel(ylabel)
    _counts(bars, [getattr(data.trend[b], counts_of) if b in data.trend else 0 for b in data.buckets], data)
    return Chart(chart_id, title, caption, _uri(fig), True)


def nps_trend(data: ReportData) -> Chart:
    return _trend(data, "chart-nps", "Net Promoter Score", "NPS", "nps_estimate", "nps_responses", BLUE,
                  (-100, 100), "NPS")


def csat_trend(data: ReportData) -> Chart:
    return _trend(data, "chart-csat", "Customer satisfaction (CSAT)", "Share of 4-5 ratings", "csat_estimate",
                  "csat_responses", GREEN, (0, 100), "% satisfied")


def _top_categories(data: ReportData) -> list[str]:
    totals = {c: sum(v.values()) for c, v in data.category_volume.items()}
    return sorted(totals, key=lambda c: (-totals[c], c))


def category_volume(data: ReportData) -> Chart:
    title, caption = "Volume by category", f"Responses per {data.bucket}; an item with two categories counts in both"
    cats = _top_categories(data)
    if not cats:
        return _empty("chart-volume", title, caption, "No feedback in this period")
    shown, rest = cats[:TOP_CATEGORIES], cats[TOP_CATEGORIES:]
    fig, ax = _figure(3.1)
    bottom = [0] * len(data.buckets)
    series = [(label(c), [data.category_volume[c].get(b, 0) for b in data.buckets]) for c in shown]
    if rest:
        series.append(("Other categories", [sum(data.category_volume[c].get(b, 0) for c in rest)
                                            for b in data.buckets]))
    colours = [colour(c) for c in shown] + [CATEGORY_COLOURS["other"]]
    for (name, values), color in zip(series, colours, strict=False):
        ax.bar(range(len(values)), values, bottom=bottom, color=color, width=0.75, label=name)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.set_ylabel("responses")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _ticks(ax, data.buckets, data.bucket)
    return Chart("chart-volume", title, caption, _uri(fig), True)


def negative_share(data: ReportData) -> Chart:
    title = "Negative share by category"
    caption = f"Share of negative responses per category and {data.bucket} (blank: fewer than {MIN_SAMPLE} assessed)"
    cats = _top_categories(data)[:8]
    if not cats:
        return _empty("chart-negative", title, caption, "No feedback in this period")
    grid = []
    for c in cats:
        row = []
        for b in data.buckets:
            neg, assessed = data.category_negative.get(c, {}).get(b, (0, 0))
            row.append(100.0 * neg / assessed if assessed >= MIN_SAMPLE else math.nan)
        grid.append(row)
    if all(math.isnan(v) for row in grid for v in row):
        return _empty("chart-negative", title, caption, f"Not enough data: no category has {MIN_SAMPLE} assessed "
                      f"responses in any {data.bucket}")
    _style()
    fig, ax = plt.subplots(figsize=(8.6, 0.42 * len(cats) + 1.0), dpi=100)
    image = ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=100, interpolation="nearest")
    ax.set_yticks(range(len(cats)))
    ax.set_yticklabels([label(c) for c in cats])
    _ticks(ax, data.buckets, data.bucket)
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(length=0)
    if len(data.buckets) <= 16:
        for y, row in enumerate(grid):
            for x, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(x, y, f"{value:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if value > 55 else INK)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    bar.outline.set_visible(False)
    bar.set_label("% negative", color=MUTED)
    return Chart("chart-negative", title, caption, _uri(fig), True)


def top_aspects(data: ReportData) -> Chart:
    title = "Top negative aspects"
    caption = "Negative mentions in this period (bars) and in the previous one (ticks)"
    if not data.aspects:
        return _empty("chart-aspects", title, caption, "No negative feedback in this period")
    items = list(reversed(data.aspects))
    fig, ax = _figure(0.36 * len(items) + 0.9)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ys = range(len(items))
    ax.barh(ys, [a.negative for a in items], color=RED, height=0.62, alpha=0.85)
    ax.scatter([a.previous_negative for a in items], ys, marker="|", s=260, color=INK, linewidths=1.6,
               label="previous period", zorder=3)
    for y, a in zip(ys, items, strict=True):
        ax.text(max(a.negative, a.previous_negative), y, f"  {a.negative} of {a.mentions} mentions", va="center",
                fontsize=8, color=INK)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([label(a.category) for a in items])
    ax.set_xlim(0, max(max(a.negative for a in items), max(a.previous_negative for a in items)) * 1.45)
    ax.legend(loc="lower right", fontsize=8)
    return Chart("chart-aspects", title, caption, _uri(fig), True)


def all_charts(data: ReportData) -> list[Chart]:
    return [nps_trend(data), csat_trend(data), category_volume(data), negative_share(data), top_aspects(data)]
