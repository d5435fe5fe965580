"""`sdd-data inspect PATH`: detect what PATH is, build its view and write one self-contained HTML page."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sdd_data import artifacts
from sdd_data.errors import SddError, first_line
from sdd_data.inspect.config import InspectConfig
from sdd_data.inspect.html_parts import View, ViewOptions
from sdd_data.inspect.page import render_page
from sdd_data.output_folder import write_atomically
from sdd_data.registry import Registry

PAGE_FILE = "report.html"
"""The page's default name, inside the folder looked at."""


@dataclass
class InspectResult:
    """The page written, its size in bytes and the view it shows."""

    path: Path
    size: int
    view: View


def build_view(config: InspectConfig) -> View:
    """The view of the stage output at `config.path` (distill, select, published or eval)."""
    output = artifacts.detect(config.path)
    shown = "a distill run, a select output, a published folder or an eval folder"
    if output is None:
        raise SddError(f"{config.path} is not {shown}")
    if output.kind not in VIEWS:
        what = "a model checkpoint" if output.kind == artifacts.MODEL else f"a {output.kind} output"
        raise SddError(f"{config.path} is {what}; inspect takes {shown}")
    if not output.finished:
        stage = artifacts.WRITTEN_BY[output.kind]
        raise SddError(f"{config.path} is an unfinished {stage} output; rerun `sdd-data {stage}` to finish it")
    if config.max_text_chars < 1 or not config.max_text_mb > 0 or not math.isfinite(config.max_text_mb):
        raise SddError("max_text_chars must be at least 1 and max_text_mb a number above 0")
    try:
        return _view(output, config)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, ArithmeticError) as error:
        # The records were written by sdd-data in a known shape: any other shape means they were damaged.
        record = RECORDS.get(output.kind, "records")
        detail = f"{type(error).__name__}: {first_line(error)}"[:200]
        raise SddError(f"{config.path}: its {record} is damaged or not sdd-data's ({detail})") from None


RECORDS = {
    artifacts.DISTILL_RUN: f"{artifacts.STATS_FILE} or rows",
    artifacts.PUBLISHED: f"{artifacts.PROVENANCE_FILE} or rows",
    artifacts.SELECT_OUTPUT: f"{artifacts.SELECT_REPORT} or rows",
    artifacts.EVAL_RESULTS_KIND: artifacts.EVAL_RESULTS,
}
"""What each kind of output's page is built from, to name in an error."""


VIEWS: Registry[Callable[[artifacts.StageOutput, ViewOptions], View]] = Registry(
    "inspect view",
    {
        artifacts.DISTILL_RUN: "sdd_data.inspect.distill_view:distill_view",
        artifacts.PUBLISHED: "sdd_data.inspect.distill_view:distill_view",
        artifacts.SELECT_OUTPUT: "sdd_data.inspect.select_view:select_view",
        artifacts.EVAL_RESULTS_KIND: "sdd_data.inspect.eval_view:eval_view",
    },
)
"""Output kind -> the view that shows it: a function of the output and the options. A new view is one module
with one such function and one line here."""


def _view(output: artifacts.StageOutput, config: InspectConfig) -> View:
    options = ViewOptions(config.data_config, config.max_text_chars, int(config.max_text_mb * 1_000_000))
    return VIEWS.get(output.kind)(output, options)


def inspect_output(config: InspectConfig, show_progress: bool = True, label: str | None = None) -> InspectResult:
    """Write the HTML page of a stage output and say where it is and how big; `label` names the output in the
    page's header (default: its path)."""
    view = build_view(config)
    target = Path(config.output) if config.output else Path(config.path) / PAGE_FILE
    if target.is_dir():
        raise SddError(f"--output {target} is a folder; give the HTML file's path")
    if not target.parent.is_dir():
        raise SddError(f"--output {target}: folder {target.parent} does not exist")
    page = render_page(view, label or str(Path(config.path)))
    try:
        write_atomically(target, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    except OSError as error:
        raise SddError(f"cannot write {target}: {error.strerror or error}") from None
    size = target.stat().st_size
    if show_progress:
        print(f"wrote {target} ({size / 1_000_000:.2f} MB, {view.kind} view)")
    return InspectResult(target, size, view)
