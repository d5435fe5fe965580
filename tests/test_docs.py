"""The docs site's home page is the README, and every docs page is in the site's navigation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


FENCE = re.compile(r"^(`{3,})([\w-]*)[^\n]*\n(.*?)^\1\s*$", re.S | re.M)


def _blocks(language: set[str]) -> list[tuple[str, str]]:
    """(page, text) of every fenced block in the README and docs whose language is in `language`."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if page.name in ("index.md", "example-card.md"):  # the README again; a card shown as it is
            continue
        found += [(page.name, match[3]) for match in FENCE.finditer(page.read_text()) if match[2] in language]
    return found


def _commands(text: str) -> list[str]:
    """The `sdd-data ...` commands of a shell block: continuation lines joined, prompts, comments and chains split."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        line = line.removeprefix("$ ").split(" #")[0]
        for part in re.split(r"&&|\|\||;|\|", line):
            words = part.strip()
            if words.startswith("sdd-data "):
                commands.append(words)
    return commands


def test_every_documented_command_parses_with_the_real_parser():
    import shlex

    from sdd_data.cli import build_parser

    parser = build_parser()
    commands = [(page, command) for page, text in _blocks({"bash", "", "console", "sh"}) for command in _commands(text)]
    assert len(commands) >= 25
    for page, command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"{page}: `{command}` does not parse: a flag or stage that does not exist")


def test_every_documented_pipeline_loads_into_its_stages_configs():
    from sdd_data.config import build_config
    from sdd_data.errors import SddError
    from sdd_data.stages import STAGES

    pipelines = [(page, yaml.safe_load(text)) for page, text in _blocks({"yaml"}) if text.lstrip().startswith("steps:")]
    assert pipelines
    for page, document in pipelines:
        for step in document["steps"]:
            ((name, options),) = step.items()
            try:
                build_config(STAGES.get(name).config_class(), options)
            except SddError as error:
                pytest.fail(f"{page}: the pipeline's {name} step does not load: {error}")


RUNS = re.compile(r"^<!-- runs -->\n```bash\n(.*?)^```", re.S | re.M)
SETUP = re.compile(r"<!-- setup-commands -->\n```bash\n(.*?)```", re.S)


@pytest.mark.slow
@pytest.mark.model
def test_every_example_marked_runs_runs_as_written(tmp_path):
    """Blocks marked `<!-- runs -->` run as they are, in order, in one folder per page; the README's run after
    the quick start's distill (the first set-up command's last part), since they read its output."""
    import os
    import subprocess
    import sys

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    runnable = {page: RUNS.findall(page.read_text()) for page in pages if page.name != "index.md"}
    assert runnable[ROOT / "README.md"], "the README's quick start has a block marked <!-- runs -->"
    quick_start = SETUP.search((ROOT / "README.md").read_text())[1].splitlines()[0].split(" && ")[-1]
    assert quick_start.startswith("sdd-data distill ")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for page, blocks in runnable.items():
        if not blocks:
            continue
        folder = tmp_path / page.stem
        folder.mkdir()
        script = "\n".join(([quick_start] if page.name == "README.md" else []) + blocks)
        finished = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, env=env, text=True,
                                  capture_output=True, timeout=1200)  # fmt: skip
        assert finished.returncode == 0, f"{page.name}: {finished.stderr[-2000:]}"
    readme = tmp_path / "README"
    assert (readme / "runs/example/report.html").exists()
    assert (readme / "published/example/README.md").exists()
    assert (readme / "runs/smollm2-pruned/config.json").exists()
