"""The layout keeps its promises: no import circle, stages apart from each other, a light CLI start-up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sdd_data"
STAGE_PACKAGES = ("distill", "select", "publish", "prune", "train", "merge", "evaluate", "inspect")
HEAVY_MODULES = ("torch", "transformers", "vllm", "pyarrow")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path, top_level_only: bool) -> set[str]:
    """The sdd_data modules a file imports (`from a import b` counts `a.b` when b is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in MODULES}


def test_every_import_is_absolute():
    relative = [
        f"{module_name(path)} line {node.lineno}"
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not relative


def test_no_module_level_import_circle():
    """Module-level imports between sdd_data modules (importing `a.b` runs package `a` first) form no cycle."""

    def with_packages(name: str, importer: str) -> set[str]:
        parts = name.split(".")
        parents = {".".join(parts[:end]) for end in range(2, len(parts))}
        return ({name} | parents) - {importer} - {p for p in parents if importer.startswith(p + ".")}

    graph = {
        name: set().union(*(with_packages(target, name) for target in imported_modules(path, top_level_only=True)))
        for name, path in MODULES.items()
    }
    state: dict[str, str] = {}
    stack: list[str] = []
    circles = []

    def visit(name: str) -> None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not circles, "\n".join(circles)


def test_no_import_circle_even_through_imports_inside_functions():
    """Counting the imports inside functions too, no two sdd_data modules import each other, directly or round
    a longer loop (a lazy import that hides a circle still ties the two modules together)."""
    graph = {name: imported_modules(path, top_level_only=False) - {name} for name, path in MODULES.items()}
    reaches: dict[str, set[str]] = {}

    def reachable(name: str) -> set[str]:
        if name not in reaches:
            reaches[name] = set()
            found, frontier = set(), list(graph.get(name, ()))
            while frontier:
                target = frontier.pop()
                if target not in found:
                    found.add(target)
                    frontier.extend(graph.get(target, ()))
            reaches[name] = found
        return reaches[name]

    circles = sorted(name for name in graph if name in reachable(name))
    assert not circles, f"modules on an import circle (imports inside functions counted): {circles}"


@pytest.mark.parametrize("stage", STAGE_PACKAGES)
def test_a_stage_uses_other_stages_only_through_their_public_face(stage):
    """Modules of one stage may import another stage's package (its config and function), never its modules."""
    others = [other for other in STAGE_PACKAGES if other != stage]
    reaching_in = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.startswith(f"sdd_data.{stage}.") or name == f"sdd_data.{stage}"
        for target in imported_modules(path, top_level_only=False)
        if any(target.startswith(f"sdd_data.{other}.") for other in others)
    )
    assert not reaching_in


def test_shared_modules_import_no_stage():
    stage_prefixes = tuple(f"sdd_data.{stage}" for stage in STAGE_PACKAGES)
    shared = {name: path for name, path in MODULES.items() if not name.startswith(stage_prefixes)}
    allowed = {"sdd_data.cli", "sdd_data.pipeline", "sdd_data.stages"}  # they run the stages, by import path
    upward = sorted(
        f"{name} imports {target}"
        for name, path in shared.items()
        if name not in allowed
        for target in imported_modules(path, top_level_only=False)
        if target.startswith(stage_prefixes)
    )
    assert not upward


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.rstrip("\n")


def test_building_the_cli_imports_no_heavy_library():
    loaded = run_python(
        "import sys\n"
        "from sdd_data.cli import build_parser\n"
        "build_parser()\n"
        f"print(','.join(name for name in {HEAVY_MODULES!r} if name in sys.modules))"
    )
    assert loaded == ""


def test_reading_what_the_engines_declare_imports_no_heavy_library():
    """Listing the engines, reading their traits and the packages each stage may need stays light."""
    loaded = run_python(
        "import sys\n"
        "from sdd_data.engines import ENGINES, engine_traits\n"
        "from sdd_data.stages import STAGES\n"
        "traits = [engine_traits(name) for name in ENGINES]\n"
        "needs = [stage.needs for _, stage in STAGES.items()]\n"
        f"print(','.join(name for name in {HEAVY_MODULES!r} if name in sys.modules))"
    )
    assert loaded == ""


@pytest.mark.parametrize("arguments", [["--help"], ["distill", "--help"], ["select", "--help"], ["run", "--help"]])
def test_help_runs_without_heavy_imports(arguments):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sdd_data.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "usage: sdd-data" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY_MODULES)


def test_stage_packages_export_their_config_and_function():
    from sdd_data.stages import STAGES

    for _, stage in STAGES.items():
        package = stage.config.split(":")[0].rsplit(".", 1)[0]
        config_name, function_name = stage.config.split(":")[1], stage.function.split(":")[1]
        code = (
            f"import sys\nfrom {package} import {config_name}\n"
            f"print(','.join(name for name in {HEAVY_MODULES!r} if name in sys.modules))\n"
            f"from {package} import {function_name}\nprint(callable({function_name}))"
        )
        loaded, callable_function = run_python(code).splitlines()
        assert loaded == "" and callable_function == "True", package


def engine_name_comparisons(source: str, engine_names: set[str]) -> list[int]:
    """Lines where `source` compares something with an engine's name written out (`== "vllm"`, `in ("vllm", ...)`,
    `case "vllm":`)."""

    def names_an_engine(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in engine_names
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(map(names_an_engine, node.elts))

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(map(names_an_engine, [node.left, *node.comparators])):
            lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and names_an_engine(node.value):
            lines.append(node.value.lineno)
    return lines


def test_no_stage_tells_engines_apart_by_name():
    """Stages ask an engine what it can do (`sdd_data.engines.EngineTraits`); only the engines package itself may
    compare with an engine's name."""
    from sdd_data.engines import ENGINES

    engine_names = set(ENGINES.names())
    written_out = 'if engine == "vllm" or name not in ("transformers", "other"):\n    pass'
    assert len(engine_name_comparisons(written_out, engine_names)) == 2
    found = sorted(
        f"{name} line {line}"
        for name, path in MODULES.items()
        if not name.startswith("sdd_data.engines")
        for line in engine_name_comparisons(path.read_text(), engine_names)
    )
    assert not found, f"compare an engine's capabilities, not its name: {found}"
