"""The inspect page in headless Chromium: it runs, its numbers equal stats.json, a reason in the address filters
the list to exactly those rows, the diff marks the changed word, and 100,000 rows show their first screen fast.

Chromium is a system package (`apt-get install -y chromium`); without it these tests fail, saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from inspect_samples import CHANGED_ROW, synthetic_rows, write_distill_run

from sdd_data.inspect import InspectConfig, inspect_output

pytestmark = pytest.mark.slow  # each page opens a browser: a few seconds a test

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("the browser tests need Chromium: apt-get update && apt-get install -y chromium", pytrace=False)


def dump_dom(page: Path, fragment: str = "") -> tuple[str, float]:
    """The DOM after the page's script ran (Chromium prints it once the page has loaded), and the seconds taken."""
    started = time.perf_counter()
    result = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.resolve().as_uri() + fragment],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, time.perf_counter() - started


class DomReader(HTMLParser):
    """What the tests look at in a dumped page."""

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.stats: dict[str, str | None] = {}
        self.listed: list[str | None] = []
        self.shown: str | None = None
        self.detail_id: str | None = None
        self.marked: dict[str, list[str]] = {"ins": [], "del": []}
        self.errors: list[str] = []
        self._mark: str | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if tag == "html":
            self.root = values
        if "data-stat" in values:
            self.stats[values["data-stat"]] = values["data-value"]
        if "row" in classes and tag == "div":
            self.listed.append(values.get("data-id"))
        if values.get("id") == "shown":
            self.shown = values.get("data-shown")
        if values.get("id") == "detail":
            self.detail_id = values.get("data-id")
        if tag in self.marked:
            self._mark = tag
            self.marked[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._mark:
            self._mark = None

    def handle_data(self, data):
        if self._mark:
            self.marked[self._mark][-1] += data


def open_page(page: Path, fragment: str = "") -> DomReader:
    dom, _ = dump_dom(page, fragment)
    reader = DomReader()
    reader.feed(dom)
    assert reader.root.get("data-ready") == "1", "the page's script did not finish"
    return reader


@pytest.fixture
def distill_page(distilled) -> Path:
    return inspect_output(InspectConfig(path=str(distilled)), show_progress=False).path


def test_the_rendered_summary_equals_stats_json(distill_page, distilled):
    stats = json.loads((distilled / "stats.json").read_text())
    page = open_page(distill_page)
    assert page.stats["rows_in"] == str(stats["rows_in"]) and page.stats["rows_out"] == str(stats["rows_out"])
    assert {name: page.stats[f"decisions.{name}"] for name in stats["decisions"]} == {
        name: str(count) for name, count in stats["decisions"].items()
    }
    assert page.stats["tokens.completion"] == str(stats["tokens"]["completion"])
    assert page.shown == str(stats["rows_in"]) and len(page.listed) == stats["rows_in"]


@pytest.mark.parametrize(
    "fragment, expected",
    [
        ("#reason=answer_mismatch", ["wrong"]),
        ("#decision=original", ["wrong", "cut", "leak"]),
        ("#decision=original&task=free", ["leak"]),
        ("#reason=no_such_reason", []),
        ("#q=apple", ["fine"]),
    ],
)
def test_filters_in_the_address_show_exactly_their_rows(distill_page, distilled, fragment, expected):
    page = open_page(distill_page, fragment)
    assert page.listed == expected and page.shown == str(len(expected))


def test_a_row_link_opens_that_row_and_the_diff_marks_the_changed_word(tmp_path):
    run = write_distill_run(tmp_path / "run", synthetic_rows(50))
    page_path = inspect_output(InspectConfig(path=str(run)), show_progress=False).path
    page = open_page(page_path, "#row=row-000007")
    assert page.detail_id == "row-000007"
    page = open_page(page_path, f"#row={CHANGED_ROW['id']}")
    assert page.detail_id == CHANGED_ROW["id"]
    assert page.marked == {"del": ["mat."], "ins": ["rug."]}


def test_a_page_of_100k_rows_shows_its_first_screen_within_seconds(tmp_path):
    run = write_distill_run(tmp_path / "run", synthetic_rows(100_000))
    result = inspect_output(InspectConfig(path=str(run)), show_progress=False)
    assert result.size < 80_000_000
    dom, seconds = dump_dom(result.path, "#decision=original")
    reader = DomReader()
    reader.feed(dom)
    assert reader.root.get("data-ready") == "1"
    first_screen_ms = float(reader.root["data-first-screen-ms"] or "inf")
    assert first_screen_ms < 8000, f"first screen after {first_screen_ms:.0f} ms"
    assert reader.shown == "50000" and 0 < len(reader.listed) <= 100  # only the rows in view are in the DOM
    assert seconds < 60


def test_a_screenshot_of_the_distill_view_shows_the_page(distill_page, tmp_path):
    from PIL import Image, ImageStat

    shot = tmp_path / "distill-view.png"
    result = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600",
         f"--screenshot={shot}", distill_page.resolve().as_uri() + "#reason=answer_mismatch"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        top = image.convert("RGB").crop((0, 0, 1280, 60))  # the dark title bar
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert ImageStat.Stat(top.convert("L")).mean[0] < 100, "no title bar drawn"
    assert len(colours) > 200, "the page looks blank"  # text, charts and tables in many shades
    print(f"screenshot: {shot}")
