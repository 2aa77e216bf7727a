"""The report's charts: matplotlib (Agg) figures embedded as base64 SVG data URIs (no external files).

Every chart function returns a :class:`Chart` even without data (then a figure that says so), so
the page always has the same sections and a test can check that each is there.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from datetime import date

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sinks.report.data import ReportData
from sinks.report.sections import label

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
BLUE = "#2f6fde"
GREEN = "#1f9d55"
RED = "#d64545"
PALETTE = ["#2f6fde", "#f0a202", "#1f9d55", "#d64545", "#7c5cc4", "#12a4b6", "#e56b9b", "#9aa5b1"]
TOP_CATEGORIES = 6


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


def nps_trend(data: ReportData) -> Chart:
    title, caption = "Net Promoter Score", f"NPS per {data.bucket} (line; dotted: the whole period) and responses"
    points = [data.trend[b].nps if b in data.trend else None for b in data.buckets]
    if not any(p is not None for p in points):
        return _empty("chart-nps", title, caption, "No NPS responses in this period")
    _style()
    fig, (ax, bars) = plt.subplots(2, 1, figsize=(8.6, 3.3), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [4, 1], "hspace": 0.08})
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    counts = [data.trend[b].nps_responses if b in data.trend else 0 for b in data.buckets]
    bars.bar(range(len(counts)), counts, color="#c5d6f5", width=0.7)
    bars.set_ylabel("responses", fontsize=8)
    bars.set_yticks([0, max(counts)])
    xs = [i for i, p in enumerate(points) if p is not None]
    ys = [p for p in points if p is not None]
    ax.plot(xs, ys, color=BLUE, linewidth=2.2, marker="o", markersize=3.5)
    ax.fill_between(xs, ys, 0, color=BLUE, alpha=0.08)
    ax.axhline(0, color=MUTED, linewidth=0.8)
    low, high = min([*ys, 0]), max([*ys, 0])
    pad = max(10.0, (high - low) * 0.15)
    ax.set_ylim(max(-100, low - pad), min(100, high + pad))
    ax.set_ylabel("NPS")
    if data.current.nps is not None:
        ax.axhline(data.current.nps, color=BLUE, linewidth=0.8, linestyle=":")
        ax.annotate(f"period {data.current.nps:+.0f}", xy=(len(points) - 0.5, data.current.nps), fontsize=8,
                    color=BLUE, ha="right", va="bottom")
    _ticks(bars, data.buckets, data.bucket)
    return Chart("chart-nps", title, caption, _uri(fig), True)


def csat_trend(data: ReportData) -> Chart:
    title, caption = "Customer satisfaction (CSAT)", f"Share of 4-5 ratings per {data.bucket} and the mean score"
    pct = [data.trend[b].csat_pct if b in data.trend else None for b in data.buckets]
    if not any(p is not None for p in pct):
        return _empty("chart-csat", title, caption, "No CSAT ratings in this period")
    fig, ax = _figure()
    xs = [i for i, p in enumerate(pct) if p is not None]
    ax.plot(xs, [p for p in pct if p is not None], color=GREEN, linewidth=2.2, marker="o", markersize=3.5,
            label="% satisfied (4-5)")
    ax.set_ylim(0, 105)
    ax.set_ylabel("% satisfied")
    mean_ax = ax.twinx()
    means = [data.trend[b].csat_mean if b in data.trend else None for b in data.buckets]
    mean_ax.plot(xs, [m for m in means if m is not None], color=MUTED, linewidth=1.2, linestyle="--",
                 label="mean score (1-5)")
    mean_ax.set_ylim(1, 5.2)
    mean_ax.set_ylabel("mean score")
    mean_ax.spines["right"].set_visible(True)
    handles = ax.get_legend_handles_labels()[0] + mean_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", ncols=2, fontsize=8)
    _ticks(ax, data.buckets, data.bucket)
    return Chart("chart-csat", title, caption, _uri(fig), True)


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
    for i, (name, values) in enumerate(series):
        color = PALETTE[i] if name != "Other categories" else PALETTE[-1]
        ax.bar(range(len(values)), values, bottom=bottom, color=color, width=0.75, label=name)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.set_ylabel("responses")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _ticks(ax, data.buckets, data.bucket)
    return Chart("chart-volume", title, caption, _uri(fig), True)


def negative_share(data: ReportData) -> Chart:
    title = "Negative share by category"
    caption = f"Share of negative responses per category and {data.bucket} (blank: fewer than 5 assessed)"
    cats = _top_categories(data)[:8]
    if not cats:
        return _empty("chart-negative", title, caption, "No feedback in this period")
    grid = []
    for c in cats:
        row = []
        for b in data.buckets:
            neg, assessed = data.category_negative.get(c, {}).get(b, (0, 0))
            row.append(100.0 * neg / assessed if assessed >= 5 else math.nan)
        grid.append(row)
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
        ax.text(max(a.negative, a.previous_negative), y, f"  {a.negative} ({a.share:.0f}% of mentions)", va="center",
                fontsize=8, color=INK)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([label(a.category) for a in items])
    ax.set_xlim(0, max(max(a.negative for a in items), max(a.previous_negative for a in items)) * 1.45)
    ax.legend(loc="lower right", fontsize=8)
    return Chart("chart-aspects", title, caption, _uri(fig), True)


def all_charts(data: ReportData) -> list[Chart]:
    return [nps_trend(data), csat_trend(data), category_volume(data), negative_share(data), top_aspects(data)]
