"""The owner's margin chart: net margin per day over 14 days as bars (green above zero, red below), readable
on a phone. matplotlib's object API on the Agg canvas, as circles/sales_ops/charts.py: it renders in a
thread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circles.unit_economics.kpi import MarginDay

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.0, 120  # 960 x 480 px: readable on a phone
_GAIN, _LOSS = "#1a7f37", "#d1242f"


def render_margin_chart(days: Sequence[MarginDay], title: str, path: Path) -> Path:
    """Draw the chart into `path` (PNG); a day without a priced delivery stays empty, not drawn as 0."""
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    figure.subplots_adjust(left=0.1, right=0.98, top=0.86, bottom=0.12)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    xs = list(range(len(days)))
    values = [math.nan if d.net_margin_eur is None else d.net_margin_eur for d in days]
    colours = [_LOSS if v < 0 else _GAIN for v in values]
    figure.suptitle(title, fontsize=16, fontweight="bold")
    axes.bar(xs, values, color=colours, width=0.7)
    axes.axhline(0, color="#57606a", linewidth=1)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=11)
    ticks = [x for x in xs if (len(xs) - 1 - x) % 2 == 0]
    axes.set_xticks(ticks, [days[x].day.strftime("%d.%m") for x in ticks])
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", pil_kwargs={"compress_level": 1})
    return path
