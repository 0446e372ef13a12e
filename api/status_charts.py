"""Line charts as inline SVG for the status page: no script, no stylesheet, nothing fetched.

Each chart is an ``<svg id=chart-NAME data-points=N>`` with one ``<polyline data-series=...>``
per line, so tests and scrapers can count what is drawn. The x axis is the last ``window_s``
seconds up to ``now_s``; the y axis starts at 0 and ends a little above the largest value.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from api.status_history import Series

WIDTH = 520
HEIGHT = 170
MARGIN_LEFT = 52
MARGIN_RIGHT = 10
MARGIN_TOP = 10
MARGIN_BOTTOM = 22
# Colour-blind-safe (Okabe-Ito), in the order lines are drawn.
PALETTE = ("#0072B2", "#009E73", "#D55E00", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _axis_number(value: float) -> str:
    """Short enough for the y axis: 36k, 3.6M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1_000:g}k"
    return _number(value)


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def line_chart(
    chart_id: str,
    title: str,
    unit: str,
    series: Sequence[Series],
    *,
    now_s: float,
    window_s: float,
) -> str:
    """A titled figure: the SVG and a legend with each line's latest value."""
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    start_s = now_s - window_s
    drawn = [line for line in series if line.points]
    top = _nice_ceiling(max((value for line in drawn for _, value in line.points), default=0.0))

    def x_of(at_s: float) -> float:
        return MARGIN_LEFT + plot_width * min(1.0, max(0.0, (at_s - start_s) / window_s))

    def y_of(value: float) -> float:
        return MARGIN_TOP + plot_height * (1.0 - min(1.0, max(0.0, value / top)))

    parts: list[str] = []
    for fraction in (0.0, 0.5, 1.0):  # grid lines and y labels
        y = y_of(top * fraction)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{MARGIN_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#555">{_axis_number(top * fraction)}</text>'
        )
    for minutes_ago in range(int(window_s // 60), -1, -5):  # x labels every 5 minutes
        x = x_of(now_s - minutes_ago * 60)
        label = "now" if minutes_ago == 0 else f"&minus;{minutes_ago} min"
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11" '
            f'fill="#555">{label}</text>'
        )
    points_total = 0
    for index, line in enumerate(series):
        if not line.points:
            continue
        points_total += len(line.points)
        coordinates = " ".join(f"{x_of(at):.1f},{y_of(value):.1f}" for at, value in line.points)
        parts.append(
            f'<polyline data-series="{html.escape(line.name)}" data-points="{len(line.points)}" '
            f'fill="none" stroke="{colour(index)}" stroke-width="1.8" points="{coordinates}"/>'
        )
        if len(line.points) == 1:  # a single point is no line: mark it
            x, y = x_of(line.points[0][0]), y_of(line.points[0][1])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour(index)}"/>')
    if points_total == 0:
        parts.append(
            f'<text x="{MARGIN_LEFT + plot_width / 2}" y="{MARGIN_TOP + plot_height / 2}" '
            f'text-anchor="middle" font-size="12" fill="#888">no data yet</text>'
        )
    legend = "".join(
        f'<span class=key><i style="background:{colour(index)}"></i>{html.escape(line.name)} '
        f"<b>{_number(line.points[-1][1]) if line.points else '&ndash;'}</b></span>"
        for index, line in enumerate(series)
    )
    return (
        f"<figure class=chart><figcaption>{html.escape(title)} "
        f"<small>({html.escape(unit)}, last {window_s / 60:g} min)</small></figcaption>"
        f'<svg id="chart-{chart_id}" data-points="{points_total}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
        f"<div class=legend>{legend or '<span class=none>nothing in the window</span>'}</div>"
        f"</figure>"
    )
