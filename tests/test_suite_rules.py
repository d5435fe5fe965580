"""The test suite's own rules: it reads only the data it ships, and a skipped test fails the run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
# Folders outside a fresh clone: a sibling data folder ("shared" joined to "data" in any spelling), a
# machine's absolute work folder, or a path that climbs out of the repository from a test file.
OUTSIDE = re.compile(r"shared[\"']?\s*[/\\]\s*[\"']?data|(?<![\w.])/work/|parents\[[2-9]\]")
SAMPLES_LIMIT = 512 * 1024  # bytes, every file in tests/data together


def text_files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def test_no_file_under_tests_reads_data_from_outside_the_repository():
    found = [
        f"{path.relative_to(TESTS)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for path, text in text_files(TESTS)
        if path != Path(__file__).resolve()  # this file spells the patterns it looks for
        for match in OUTSIDE.finditer(text)
    ]
    assert not found, "tests must read their samples from tests/data:\n" + "\n".join(found)


def test_the_pattern_catches_the_usual_spellings():
    spellings = [
        'Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"',
        "../shared/data/gsm8k/train.jsonl",
        '"/work/shared/data/alpaca/alpaca_2k.json"',
        "REPO.parents[2]",
    ]
    assert all(OUTSIDE.search(spelling) for spelling in spellings)
    assert not OUTSIDE.search('Path(__file__).resolve().parents[1] / "tests" / "data" / "gsm8k" / "train.jsonl"')


def test_every_data_sample_is_listed_in_the_readme_and_all_stay_small():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    files = [path for path in DATA.rglob("*") if path.is_file() and path.name != "README.md"]
    unlisted = [str(path.relative_to(DATA)) for path in files if f"`{path.relative_to(DATA).as_posix()}`" not in readme]
    assert not unlisted, f"add these to tests/data/README.md: {unlisted}"
    assert sum(path.stat().st_size for path in files) < SAMPLES_LIMIT


# --- a skipped test fails the run --------------------------------------------------------------------

CASES = """
import pytest

def test_passes():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_expected_failure():
    assert False

@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("no GPU here")
"""
SKIPPING_CASES = """
import pytest

def test_reads_a_missing_file():
    pytest.skip("the data file is missing")

@pytest.mark.skipif(True, reason="a package is missing")
def test_marked_to_skip():
    pass
"""
SKIPPED_MODULE = """
import pytest

pytest.skip("an optional package is missing", allow_module_level=True)

def test_never_collected():
    pass
"""


def run_pytest(folder: Path, files: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    """Pytest with only the skip policy loaded, in its own process, on the given test files."""
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider", "-q", "-rs"]
    return subprocess.run(
        command + list(options) + list(files), cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


PARALLEL = ("-n", "2", "--dist", "loadfile")  # as CI runs the suite: the reports come from worker processes


@pytest.mark.parametrize("options", [(), PARALLEL], ids=["one-process", "two-workers"])
def test_gpu_skips_and_expected_failures_leave_a_run_passing(options, tmp_path):
    result = run_pytest(tmp_path, {"test_cases.py": CASES}, *options)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout
    assert "which fails this run" not in result.stdout


@pytest.mark.parametrize("options", [(), PARALLEL], ids=["one-process", "two-workers"])
def test_any_other_skip_fails_the_run_and_is_named_with_its_reason(options, tmp_path):
    files = {"test_cases.py": CASES, "test_skipping.py": SKIPPING_CASES, "test_skipped_module.py": SKIPPED_MODULE}
    result = run_pytest(tmp_path, files, *options)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "3 skipped, which fails this run" in result.stdout
    named = {line for line in result.stdout.splitlines() if line.startswith("SKIPPED test_")}
    assert named == {
        "SKIPPED test_skipping.py::test_reads_a_missing_file: the data file is missing",
        "SKIPPED test_skipping.py::test_marked_to_skip: a package is missing",
        "SKIPPED test_skipped_module.py: an optional package is missing",
    }, result.stdout


# --- parallel workers ---------------------------------------------------------------------------------


class MarkedItem:
    """What `heaviest_modules_first` reads of a test: its node id and marks."""

    def __init__(self, nodeid: str, *marks: str):
        self.nodeid = nodeid
        self.marks = [getattr(pytest.mark, name).mark for name in marks]

    def iter_markers(self):
        return iter(self.marks)


def test_workers_get_the_slow_modules_first_each_kept_whole_and_in_order():
    from tiers import heaviest_modules_first

    items = [
        MarkedItem("test_a.py::test_one"),
        MarkedItem("test_b.py::test_model", "model"),
        MarkedItem("test_b.py::test_plain"),
        MarkedItem("test_c.py::test_plain"),
        MarkedItem("test_c.py::test_real_run", "slow", "model"),
        MarkedItem("test_d.py::test_engine", "vllm"),
    ]
    heaviest_modules_first(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "test_c.py::test_plain",
        "test_c.py::test_real_run",
        "test_b.py::test_model",
        "test_b.py::test_plain",
        "test_d.py::test_engine",
        "test_a.py::test_one",
    ]


def test_each_worker_takes_an_even_share_of_the_cores(monkeypatch):
    import cores

    monkeypatch.setattr(cores, "machine_cores", lambda: [0, 1, 2, 3])
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert cores.worker_cores() == [0, 1, 2, 3]
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(cores.worker_cores())
    assert shares == [[0, 1], [2, 3]]
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "8")  # more workers than cores: one core each, shared
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    assert cores.worker_cores() == [1]
    for name in cores.THREAD_VARIABLES + (cores.VLLM_BIND_VARIABLE, cores.RAY_NICENESS_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    cores.take_this_workers_cores()
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ[cores.VLLM_BIND_VARIABLE] == "1"
    assert os.environ[cores.RAY_NICENESS_VARIABLE] == "0"
    assert cores.engine_environment(EXTRA="x")["OMP_NUM_THREADS"] == "1"
    whole = cores.whole_machine_environment(EXTRA="x")
    assert cores.VLLM_BIND_VARIABLE not in whole and "OMP_NUM_THREADS" not in whole and whole["EXTRA"] == "x"
