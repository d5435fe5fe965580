"""What a view is (summary HTML, charts, rows for the list), what an inspect view registers, and the small
HTML helpers the views share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sdd_data.artifacts import StageOutput


@dataclass(frozen=True)
class ViewOptions:
    """What every view is given besides the output: the published config to show and the text limits."""

    config_name: str | None
    max_chars: int
    budget_chars: int


@dataclass
class View:
    """One kind of output made into a page: a title, summary HTML, inline SVG charts and the rows to list."""

    kind: str
    title: str
    summary: dict
    """The summary's numbers, JSON-ready (what the summary HTML shows)."""
    summary_html: str
    charts: list[str] = field(default_factory=list)
    rows: dict | None = None
    """The list's data: `n`, `columns` (name -> values or categorical), `list` (what the list shows), `filters`,
    `search` and `detail` (which detail panel), `text_limit`, `texts_cut`, `full_rows` (where the whole rows are)."""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InspectView:
    """How inspect shows one kind of stage output; registered in `VIEWS` under that kind."""

    shows: str
    """What it shows, in words (`a distill run`), for the refusal that lists what inspect takes."""
    records: str
    """What its page is read from, named when they are damaged (`stats.json or rows`)."""
    build: Callable[[StageOutput, ViewOptions], View]
    """The page's view of the output, given the options every view is given."""


def number(value: Any) -> str:
    """A number for people: thousands separators, floats to 4 significant digits; anything else as text."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def cell(value: Any, stat: str | None = None) -> str:
    """A table cell; `stat` names the number (data-stat, with the raw value in data-value) for readers and tests."""
    if stat is None:
        return f"<td>{escape(number(value))}</td>"
    raw = "" if value is None else str(value)
    return f'<td class="num" data-stat="{escape(stat)}" data-value="{escape(raw)}">{escape(number(value))}</td>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """An HTML table from headers and rows of ready-made cells (`cell(...)` or `<td>` text)."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def facts(items: Iterable[tuple[str, Any, str | None]]) -> str:
    """A two-column table of (label, value, stat name or None)."""
    return table(("", ""), ([f"<th>{escape(label)}</th>", cell(value, stat)] for label, value, stat in items), "facts")


def section(title: str, body: str, wide: bool = False) -> str:
    """A titled block of the summary; a wide one (a table of many columns) takes the whole width."""
    return f'<div class="block{" wide" if wide else ""}"><h3>{escape(title)}</h3>{body}</div>'


def code(text: str) -> str:
    """Preformatted text."""
    return f"<pre>{escape(text)}</pre>"
