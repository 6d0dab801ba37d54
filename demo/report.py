"""A self-contained HTML report (tables and line charts as embedded PNG), written by `simulate` and `demo`.

Charts are drawn with matplotlib's headless Agg backend. The same input gives the same bytes (no timestamps in
the PNG or the page), so two runs with one seed write identical reports.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
from matplotlib import pyplot as plt
from matplotlib.ticker import PercentFormatter


@dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes


@dataclass(frozen=True)
class Text:
    lines: Sequence[str]
    preformatted: bool = False


Section = Table | Chart | Text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
"""


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    percent: bool = False,
) -> Chart:
    """One line per series over `labels` (gaps where a value is None), as a PNG readable on a phone."""
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=100)
    try:
        positions = list(range(len(labels)))
        for name, values in series.items():
            points = [float("nan") if v is None else (v * 100 if percent else v) for v in values]
            axes.plot(positions, points, marker="o", markersize=3, linewidth=1.8, label=name)
        axes.set_title(title)
        axes.set_ylabel(ylabel)
        axes.set_xticks(positions, list(labels), rotation=45, ha="right", fontsize=8)
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
        if percent:
            axes.yaxis.set_major_formatter(PercentFormatter())
        axes.legend(fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(figure)
    return Chart(title, buffer.getvalue())


def render(title: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        if isinstance(section, Table):
            parts.append(f"<h2>{html.escape(section.title)}</h2><table><tr>")
            parts.extend(f"<th>{html.escape(h)}</th>" for h in section.headers)
            parts.append("</tr>")
            for row in section.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
            parts.append("</table>")
        elif isinstance(section, Chart):
            data = base64.b64encode(section.png).decode("ascii")
            title = html.escape(section.title)
            parts.append(f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{data}">')
        elif section.preformatted:
            parts.append("<pre>" + html.escape("\n".join(section.lines)) + "</pre>")
        else:
            parts.extend(f"<p>{html.escape(line)}</p>" for line in section.lines)
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: Path, title: str, sections: Sequence[Section]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(title, sections), encoding="utf-8")
    return path


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table for a terminal: columns padded to their widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return "\n".join(lines)
