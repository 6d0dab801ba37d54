"""The owner's trend chart: the queue waiting for a manager and the SLA breaches per day over 14 days, as a
PNG that stays readable on a phone (two stacked panels, large type, values written on the points).

matplotlib's object API on the Agg canvas: no pyplot, no display and no global figure state, so a render can
run in a worker thread while the bot goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circles.sales_ops.kpi import TrendPoint

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 6.0, 150  # 1200 x 900 px: sharp on a phone, a few tens of KB
_QUEUE_COLOUR = "#1f6feb"
_BREACH_COLOUR = "#d1242f"


@dataclass(frozen=True)
class ChartLabels:
    """The chart's texts, translated by the caller (the render may run in another thread)."""

    title: str
    queue: str
    breaches: str


def _value(value: float | None) -> float:
    return math.nan if value is None else value


def _label(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def render_trend_chart(points: Sequence[TrendPoint], labels: ChartLabels, path: Path) -> Path:
    """Draw the chart into `path` (PNG); days without a snapshot stay empty rather than drawn as zero."""
    # Fixed margins: a layout engine would cost a third of the render for the same picture.
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.07, hspace=0.35)
    FigureCanvasAgg(figure)
    queue_axes, breach_axes = figure.subplots(2, 1, sharex=True)
    xs = list(range(len(points)))
    queue = [_value(p.queue) for p in points]
    breaches = [_value(p.breaches) for p in points]

    figure.suptitle(labels.title, fontsize=17, fontweight="bold")
    queue_axes.plot(xs, queue, color=_QUEUE_COLOUR, linewidth=3, marker="o", markersize=7)
    queue_axes.set_title(labels.queue, fontsize=15, loc="left")
    breach_axes.bar(xs, breaches, color=_BREACH_COLOUR, width=0.7)
    breach_axes.set_title(labels.breaches, fontsize=15, loc="left")
    for axes, values in ((queue_axes, queue), (breach_axes, breaches)):
        for x, value in zip(xs, values, strict=True):
            if not math.isnan(value):
                axes.annotate(
                    _label(value),
                    (x, value),
                    textcoords="offset points",
                    xytext=(0, 5),
                    ha="center",
                    fontsize=11,
                )
        top = max((v for v in values if not math.isnan(v)), default=0.0)
        axes.set_ylim(0, top * 1.25 + 1)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        axes.tick_params(labelsize=12)
    # Every other day labelled (always the last one): fourteen dates side by side do not fit a phone screen.
    ticks = [x for x in xs if (len(xs) - 1 - x) % 2 == 0]
    breach_axes.set_xticks(ticks, [points[x].day.strftime("%d.%m") for x in ticks])
    path.parent.mkdir(parents=True, exist_ok=True)
    # Light compression: a few KB more, a good part of the encoding time less.
    figure.savefig(path, format="png", pil_kwargs={"compress_level": 1})
    return path


CHART_RETENTION = timedelta(days=30)


def prune_charts(directory: Path, keep: timedelta = CHART_RETENTION) -> int:
    """Delete chart files written more than `keep` before the newest one (a digest's photo is sent within
    minutes; a month is ample). File times, not the injected clock, since the files carry file times.
    Returns how many were deleted."""
    written = {path: path.stat().st_mtime for path in directory.glob("*.png")}
    if not written:
        return 0
    cutoff = max(written.values()) - keep.total_seconds()
    old = [path for path, mtime in written.items() if mtime < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    return len(old)
