"""`sdd-data inspect PATH`: detect what PATH is, build its view and write one self-contained HTML page.

Each kind of output is shown by one `InspectView` registered in `VIEWS` under that kind (`artifacts`
detects the kind of a folder); what inspect takes, in messages and in `sdd-data run`'s check of its
input, is whatever `VIEWS` holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sdd_data import artifacts
from sdd_data.errors import SddError, first_line
from sdd_data.inspect.config import InspectConfig
from sdd_data.inspect.html_parts import InspectView, View, ViewOptions
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


VIEWS: Registry[InspectView] = Registry(
    "inspect view",
    {
        artifacts.DISTILL_RUN: "sdd_data.inspect.distill_view:DISTILL_RUN_VIEW",
        artifacts.SELECT_OUTPUT: "sdd_data.inspect.select_view:SELECT_VIEW",
        artifacts.PUBLISHED: "sdd_data.inspect.distill_view:PUBLISHED_VIEW",
        artifacts.EVAL_RESULTS_KIND: "sdd_data.inspect.eval_view:EVAL_VIEW",
    },
)
"""Output kind -> the view that shows it. A new view is one module with one `InspectView` and one line here."""


def what_inspect_takes() -> str:
    """What inspect takes, in words: `a distill run, a select output, ... or an eval folder`."""
    shown = [view.shows for _, view in VIEWS.items()]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def build_view(config: InspectConfig) -> View:
    """The view of the stage output at `config.path`, by the view registered for its kind."""
    output = artifacts.detect(config.path)
    if output is None:
        raise SddError(f"{config.path} is not {what_inspect_takes()}")
    if output.kind not in VIEWS:
        what = "a model checkpoint" if output.kind == artifacts.MODEL else f"a {output.kind} output"
        raise SddError(f"{config.path} is {what}; inspect takes {what_inspect_takes()}")
    if not output.finished:
        stage = artifacts.WRITTEN_BY[output.kind]
        raise SddError(f"{config.path} is an unfinished {stage} output; rerun `sdd-data {stage}` to finish it")
    if config.max_text_chars < 1 or not config.max_text_mb > 0 or not math.isfinite(config.max_text_mb):
        raise SddError("max_text_chars must be at least 1 and max_text_mb a number above 0")
    view = VIEWS.get(output.kind)
    options = ViewOptions(config.data_config, config.max_text_chars, int(config.max_text_mb * 1_000_000))
    try:
        return view.build(output, options)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, ArithmeticError) as error:
        # The records were written by sdd-data in a known shape: any other shape means they were damaged.
        detail = f"{type(error).__name__}: {first_line(error)}"[:200]
        raise SddError(f"{config.path}: its {view.records} is damaged or not sdd-data's ({detail})") from None


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
