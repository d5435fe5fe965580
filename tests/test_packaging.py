"""The wheel holds every module of the package, the card templates and the example data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "sdd_data", "cards")


def test_the_wheel_contains_every_module_and_template(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in SOURCES:  # a clean copy, so the build leaves nothing in the checkout
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("sdd_data-*.whl")
    contents = set(zipfile.ZipFile(wheel).namelist())

    modules = {
        str(path.relative_to(REPO)) for path in (REPO / "sdd_data").rglob("*.py") if "card_templates" not in path.parts
    }
    templates = {f"sdd_data/card_templates/{path.name}" for path in (REPO / "cards").iterdir() if path.is_file()}
    examples = {str(path.relative_to(REPO)) for path in (REPO / "sdd_data" / "data" / "examples").iterdir()}
    assert (
        len(modules) > 60
        and {"sdd_data/card_templates/dataset_card.md", "sdd_data/card_templates/model_card.md"} <= templates
    )
    page_assets = {"sdd_data/inspect/page.css", "sdd_data/inspect/page.js"}  # inlined into every inspect page
    assert not (modules | templates | examples | page_assets) - contents
    assert not any(name.startswith(("tests/", "cards/", "benchmarks/")) for name in contents)
