"""The HTML page: a header, the view's summary and charts, the row list, and the rows as embedded JSON.

Everything is inline (CSS, script, SVG, data), so the one file opens anywhere with no network.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from importlib import resources

from sdd_data import __version__
from sdd_data.inspect.html_parts import View


def _asset(name: str) -> str:
    return resources.files("sdd_data.inspect").joinpath(name).read_text(encoding="utf-8")


def embedded_json(values: dict) -> str:
    """JSON safe inside a <script> element: every `<` is written as \\u003c, so no `</script>` can end it early."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _rows_section(view: View) -> str:
    rows = view.rows
    if rows is None:
        return ""
    limit = rows["text_limit"]
    note = (
        f"{rows['texts_cut']:,} texts are cut to {limit:,} characters (ending in …, marked cut); the whole rows are in "
        f"{escape(rows['full_rows'])}."
        if rows["texts_cut"]
        else f"Texts are shown whole (none is longer than {limit:,} characters)."
    )
    return f"""
<h2>Rows</h2>
<div class="rows">
  <div class="toolbar" id="filters">
    <input id="search" type="search" placeholder="search id and texts" aria-label="search">
    <span id="shown" data-shown="0"></span>
  </div>
  <div class="list" id="list" tabindex="0"><div id="list-spacer"></div><div id="list-window"></div></div>
</div>
<p class="notes">{note} Filters and the row shown are kept in the address (#row=&lt;id&gt;), so a link shows
the same row. Only the rows in view are drawn; ↑ and ↓ move through the list.</p>
<div class="detail" id="detail"></div>"""


def render_page(view: View, source: str) -> str:
    """The whole page for a view of the output at `source`."""
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    charts = f'<h2>Charts</h2><div class="charts">{"".join(view.charts)}</div>' if view.charts else ""
    notes = "".join(f'<p class="notes">{escape(note)}</p>' for note in view.notes)
    data = embedded_json({"kind": view.kind, "rows": view.rows})
    return f"""<!DOCTYPE html>
<html lang="en" data-kind="{escape(view.kind)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(view.title)}</title>
<style>{_asset("page.css")}</style>
</head>
<body>
<header><h1>{escape(view.title)}</h1><p>{escape(source)} · {escape(view.kind)} · made by sdd-data {__version__} inspect,
{made}</p></header>
<main>
<h2>Summary</h2>
<div class="summary">{view.summary_html}</div>
{notes}
{charts}
{_rows_section(view)}
</main>
<script type="application/json" id="page-data">{data}</script>
<script>{_asset("page.js")}</script>
</body>
</html>
"""
