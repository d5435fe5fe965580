"""Inline SVG charts drawn from numbers alone (no plotting library): bars, grouped bars, histograms, boxes.

Each function returns one `<svg>` element as text, sized by its viewBox so it scales with the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#3b6fb6", "#d9822b", "#3a9a5b", "#c0392b", "#8e5ea2", "#6b7b8c", "#b8a02e", "#2aa1a8")
DECISION_COLORS = {"rewrite": "#3a9a5b", "original": "#d9822b", "dropped": "#c0392b"}


def color_for(name: str, position: int) -> str:
    """The decision's colour, or the palette's `position`-th."""
    return DECISION_COLORS.get(name, PALETTE[position % len(PALETTE)])


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def nice_top(largest: float, integers: bool) -> float:
    """The axis top: four ticks of a round step (1, 2, 2.5 or 5 × 10^k; whole numbers for counts) above `largest`."""
    if largest <= 0:
        return 4.0 if integers else 1.0
    raw = largest / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(factor * power for factor in (1, 2, 2.5, 5, 10) if factor * power >= raw)
    if integers:
        step = max(1, math.ceil(step))
    return 4 * step


def _legend(names: Sequence[str], colors: Sequence[str], x: float, y: float) -> list[str]:
    parts, offset = [], x
    for name, color in zip(names, colors):
        parts.append(f'<rect x="{offset:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{offset + 14:.1f}" y="{y:.1f}">{escape(name)}</text>')
        offset += 24 + 7 * len(name)
    return parts


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text class="chart-title" x="8" y="16">{escape(title)}</text>{"".join(body)}</svg>'
    )


def horizontal_bars(title: str, bars: Sequence[tuple[str, float, str]], width: int = 520) -> str:
    """One bar per (label, value, colour), longest scale = the largest value, value printed at the bar's end."""
    label_width = min(240, 12 + 6.6 * max((len(label) for label, _, _ in bars), default=4))
    row, top = 20, 28
    height = top + row * max(len(bars), 1) + 8
    largest = max((value for _, value, _ in bars), default=0) or 1
    span = width - label_width - 60
    body = []
    for index, (label, value, color) in enumerate(bars):
        y = top + index * row
        length = span * value / largest
        body.append(
            f'<text class="label" x="{label_width - 6:.1f}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
        )
        body.append(f'<rect x="{label_width:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" fill="{color}"/>')
        body.append(f'<text x="{label_width + length + 4:.1f}" y="{y + 13}">{_number(value)}</text>')
    if not bars:
        body.append(f'<text x="{width / 2}" y="{top + 12}" text-anchor="middle">no rows</text>')
    return _svg(width, height, title, body)


def grouped_bars(
    title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]], unit: str = "", width: int = 520
) -> str:
    """Vertical bars: one group per label, one bar per series within it, with a legend and a value axis."""
    names = list(series)
    colors = [PALETTE[index % len(PALETTE)] for index in range(len(names))]
    left, top, bottom, height = 44, 40, 46, 250
    plot_height = height - top - bottom
    values_given = [value for values in series.values() for value in values]
    largest = nice_top(max(values_given, default=0), all(float(value).is_integer() for value in values_given))
    group_width = (width - left - 10) / max(len(groups), 1)
    bar_width = group_width * 0.8 / max(len(names), 1)
    body = _legend(names, colors, left, 32)
    for tick in range(5):
        value = largest * tick / 4
        y = top + plot_height * (1 - tick / 4)
        body.append(f'<line class="grid" x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>')
    for group_index, group in enumerate(groups):
        x0 = left + group_index * group_width + group_width * 0.1
        for index, name in enumerate(names):
            value = series[name][group_index]
            bar_height = plot_height * value / largest
            x = x0 + index * bar_width
            body.append(
                f'<rect x="{x:.1f}" y="{top + plot_height - bar_height:.1f}" width="{max(bar_width - 1, 1):.1f}" '
                f'height="{bar_height:.1f}" fill="{colors[index]}"><title>{escape(name)} · {escape(group)}: '
                f"{_number(value)}{escape(unit)}</title></rect>"
            )
        label = group if len(group) <= 18 else group[:17] + "…"
        body.append(
            f'<text class="axis" x="{x0 + group_width * 0.4:.1f}" y="{height - bottom + 14}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return _svg(width, height, title, body)


def length_bins(values: Sequence[int], count: int = 12) -> list[int]:
    """Bin edges for word counts: 0, then powers-of-two-like steps up to the largest value."""
    largest = max(values, default=0)
    if largest <= count:
        return list(range(0, max(largest, 1) + 2))
    ratio = (largest + 1) ** (1 / (count - 1))
    edges = [0]
    for step in range(1, count + 1):
        edge = max(edges[-1] + 1, math.ceil(ratio**step) - 1)
        edges.append(edge)
        if edge > largest:
            break
    return edges


def histogram(values: Sequence[int], edges: Sequence[int]) -> list[int]:
    """How many values fall in [edges[i], edges[i+1])."""
    from bisect import bisect_right

    counts = [0] * (len(edges) - 1)
    for value in values:
        index = min(bisect_right(edges, value) - 1, len(counts) - 1)
        counts[max(index, 0)] += 1
    return counts


def histograms(title: str, series: dict[str, Sequence[int]], unit: str = "words", width: int = 520) -> str:
    """Grouped histograms of several series over shared bins (count per bin)."""
    edges = length_bins([value for values in series.values() for value in values])
    groups = [f"{low}" if high - low == 1 else f"{low}–{high - 1}" for low, high in zip(edges, edges[1:])]
    counted = {name: histogram(values, edges) for name, values in series.items()}
    return grouped_bars(f"{title} ({unit} per row)", groups, counted, " rows", width)


def quantiles(values: Sequence[float]) -> tuple[float, float, float, float, float]:
    """min, 25%, median, 75%, max (nearest rank)."""
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(fraction: float) -> float:
        return ordered[round(fraction * last)]

    return at(0), at(0.25), at(0.5), at(0.75), at(1)


def box_plots(title: str, groups: dict[str, Sequence[int]], unit: str = "words", width: int = 520) -> str:
    """One horizontal box (quartiles) and whiskers (min, max) per group, on a shared axis."""
    filled = {name: values for name, values in groups.items() if values}
    label_width, row, top = 110, 30, 30
    height = top + row * max(len(filled), 1) + 28
    largest = max((max(values) for values in filled.values()), default=0) or 1
    span = width - label_width - 20

    def x(value: float) -> float:
        return label_width + span * value / largest

    body = []
    for tick in range(5):
        value = largest * tick / 4
        body.append(f'<line class="grid" x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top}" y2="{height - 24}"/>')
        body.append(
            f'<text class="axis" x="{x(value):.1f}" y="{height - 10}" text-anchor="middle">{_number(value)}</text>'
        )
    for index, (name, values) in enumerate(filled.items()):
        low, first, median, third, high = quantiles(values)
        y = top + index * row + row / 2
        color = color_for(name, index)
        summary = (
            f"{name}: {len(values):,} rows, median {_number(median)} {unit}, "
            f"quartiles {_number(first)}–{_number(third)}, range {_number(low)}–{_number(high)}"
        )
        body.append(
            f'<text class="label" x="{label_width - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(name)}</text>'
        )
        body.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555"/>')
        body.append(
            f'<rect x="{x(first):.1f}" y="{y - 8:.1f}" width="{max(x(third) - x(first), 1):.1f}" height="16" '
            f'fill="{color}" fill-opacity="0.75" stroke="#333"><title>{escape(summary)}</title></rect>'
        )
        body.append(
            f'<line x1="{x(median):.1f}" x2="{x(median):.1f}" y1="{y - 8:.1f}" y2="{y + 8:.1f}" '
            'stroke="#111" stroke-width="2"/>'
        )
    if not filled:
        body.append(f'<text x="{width / 2}" y="{top + 14}" text-anchor="middle">no rows</text>')
    return _svg(width, height, f"{title} ({unit})", body)
