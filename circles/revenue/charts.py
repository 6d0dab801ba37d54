"""The `/funnel` chart: each channel's daily lead → order conversion over the window, one line per channel,
readable on a phone (matplotlib's object API on the Agg canvas, safe in a worker thread)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 150


@dataclass(frozen=True)
class ChannelSeries:
    channel: str
    values: list[float | None]  # per day; None: no leads that day


@dataclass(frozen=True)
class FunnelChartLabels:
    title: str
    axis: str


def render_funnel_chart(
    days: Sequence[date], series: Sequence[ChannelSeries], labels: FunnelChartLabels, path: Path
) -> Path:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    figure.subplots_adjust(left=0.1, right=0.98, top=0.86, bottom=0.12)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    figure.suptitle(labels.title, fontsize=16, fontweight="bold")
    xs = list(range(len(days)))
    for line in series:
        ys = [float("nan") if v is None else 100 * v for v in line.values]
        axes.plot(xs, ys, linewidth=2.5, marker="o", markersize=5, label=line.channel)
    axes.set_ylabel(labels.axis, fontsize=12)
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    step = max(1, len(xs) // 7)
    ticks = [x for x in xs if (len(xs) - 1 - x) % step == 0]
    axes.set_xticks(ticks, [days[x].strftime("%d.%m") for x in ticks])
    if series:
        axes.legend(fontsize=10, frameon=False, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", pil_kwargs={"compress_level": 1})
    return path
