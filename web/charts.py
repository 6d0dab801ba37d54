"""Inline SVG charts for the panel (no script, no front-end build): a KPI sparkline and horizontal bars.
Only numbers go into the markup; labels are escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def sparkline(series: Sequence[float | None], *, width: int = 140, height: int = 32) -> Markup:
    """A line over the known points (gaps where a day has no value); the last point is marked."""
    known = [v for v in series if v is not None]
    if len(series) < 2 or not known:
        return Markup(
            f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="—"></svg>'
        )
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = (width - 4) / (len(series) - 1)

    def point(i: int, v: float) -> tuple[float, float]:
        return 2 + i * step, height - 3 - (v - low) / span * (height - 6)

    paths: list[str] = []
    current: list[str] = []
    for i, value in enumerate(series):
        if value is None:
            if current:
                paths.append(" ".join(current))
            current = []
            continue
        x, y = point(i, value)
        current.append(f"{'M' if not current else 'L'}{x:.1f},{y:.1f}")
    if current:
        paths.append(" ".join(current))
    last_i = max(i for i, v in enumerate(series) if v is not None)
    lx, ly = point(last_i, series[last_i])  # type: ignore[arg-type]
    lines = "".join(f'<path d="{d}" fill="none" stroke="currentColor" stroke-width="1.5"/>' for d in paths)
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(str(round(known[-1], 3)))}">{lines}'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5" fill="currentColor"/></svg>'
    )


def bars(rows: Sequence[tuple[str, float, float]], *, width: int = 320, bar: int = 16) -> Markup:
    """Horizontal bars: (label, total, part) per row; the part (e.g. "helped") is drawn over the total."""
    if not rows:
        return Markup("")
    top = max(total for _, total, _ in rows) or 1.0
    label_w = 150
    room = width - label_w - 40
    height = len(rows) * (bar + 8) + 4
    parts = [f'<svg class="bars" width="100%" viewBox="0 0 {width} {height}" role="img">']
    for n, (label, total, part) in enumerate(rows):
        y = 4 + n * (bar + 8)
        whole = room * total / top
        inner = room * part / top
        parts.append(
            f'<text x="0" y="{y + bar - 4}" font-size="11">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{whole:.1f}" height="{bar}" class="total"/>'
            f'<rect x="{label_w}" y="{y}" width="{inner:.1f}" height="{bar}" class="part"/>'
            f'<text x="{label_w + whole + 4:.1f}" y="{y + bar - 4}" font-size="11">{part:g}/{total:g}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
