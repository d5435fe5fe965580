"""The docs site's home page is the README, and every docs page is in the site's navigation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def docs_index_text(readme: str) -> str:
    """The README as the docs site's home page: links into docs/ made relative to it, the CI markers left out."""
    return re.sub(r"<!-- /?setup-commands -->\n", "", readme).replace("](docs/", "](")


def test_the_docs_home_page_is_the_readme():
    expected = docs_index_text((ROOT / "README.md").read_text())
    assert (ROOT / "docs" / "index.md").read_text() == expected, (
        "docs/index.md differs from the README: write it again with tests/test_docs.py's docs_index_text"
    )


def _pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _pages(value)]
    return [page for item in nav for page in _pages(item)]


def test_every_docs_page_is_in_the_navigation_and_the_readme_stays_short():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = set(_pages(config["nav"]))
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert pages == listed, f"not in mkdocs.yml's nav: {sorted(pages - listed)}; missing: {sorted(listed - pages)}"
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
