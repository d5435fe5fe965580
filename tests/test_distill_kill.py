"""Fault injection: `sdd-data distill` killed (os._exit) at many points of a run, then run again as it was.

Each run goes through the real CLI on the tiny Llama with the transformers engine, in a child forked from a
warm helper process (distill_crasher.py) that ends the child at the n-th call of a chosen function: the
atomic-write steps, the shard and Parquet writers, the `data/` folder, the stats. After every kill the folder
must not look finished (unless the kill came after the stats landed), and the rerun must end with every row
exactly once and the same counts as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from data_samples import write_jsonl

from sdd_data.artifacts import detect

pytestmark = pytest.mark.slow  # 25 kill points, 51 distill runs: about a minute on 2 busy cores

HELPER = Path(__file__).with_name("distill_crasher.py")
VALID_ROWS = 10
SHARD_SIZE = 3  # shards of 3, 3, 3 and 1 rows; batches of 2, so shard 0 takes two generate calls
ROWS = [
    {"id": f"row-{index}", "instruction": f"What is {index} + {index}?", "input": "", "output": f"It is {2 * index}."}
    for index in range(VALID_ROWS)
] + [{"id": "blank", "instruction": " ", "input": "", "output": "Nothing."}]  # set aside as an invalid row
COUNTS = ("rows_in", "rows_out", "decisions", "reasons", "reasons_by_decision", "by_task", "tokens")


class Crasher:
    """The warm helper process: runs one distill child per job."""

    def __init__(self, workdir: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.workdir = workdir
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        assert self._reply(120) == "ready"

    def _reply(self, timeout: float) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "the distill helper did not answer"
        return self.process.stdout.readline().strip()

    def run(self, argv: list[str], kill: dict | None = None, timeout: float = 120) -> tuple[int | None, str]:
        log = self.workdir / f"log-{os.urandom(4).hex()}.txt"
        job = {"argv": argv, "log": str(log), "kill": kill, "timeout": timeout}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        code = json.loads(self._reply(timeout + 30))["exit"]
        return code, log.read_text() if log.exists() else ""

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def crasher(tmp_path_factory):
    helper = Crasher(tmp_path_factory.mktemp("crasher-logs"))
    yield helper
    helper.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill-source") / "rows.jsonl"
    write_jsonl(path, [{**row, "task": "free"} for row in ROWS])
    return path


def argv_for(source: Path, teacher: str, output: Path) -> list[str]:
    return [
        "--data",
        str(source),
        "--teacher",
        teacher,
        "--engine",
        "transformers",
        "--output",
        str(output),
        "--shard-size",
        str(SHARD_SIZE),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "8",
    ]


@pytest.fixture(scope="module")
def reference(crasher, source, tiny_llama_path, tmp_path_factory) -> Path:
    """A run that was never interrupted."""
    output = tmp_path_factory.mktemp("reference") / "run"
    code, log = crasher.run(argv_for(source, tiny_llama_path, output))
    assert code == 0, log[-3000:]
    return output


def kill(target: str, match: str, when: str, nth: int = 1) -> dict:
    return {"target": target, "match": match, "nth": nth, "when": when}


GENERATE = "sdd_data.engines.transformers_engine:decode"  # one call per batch of rows
SHARD = "shards/shard-{:05d}.parquet"
# name: (where the child dies, paths that must exist then, paths that must not)
FRESH_KILLS = {
    # start-up
    "output-folder-made": (kill("pathlib:Path.mkdir", "{output}", "after"), [], ["run.json"]),
    "manifest-written-not-renamed": (kill("os:replace", "run.json", "before"), [".run.json.tmp-*"], ["run.json"]),
    "manifest-in-place": (kill("os:replace", "run.json", "after"), ["run.json"], ["shards"]),
    "shards-folder-made": (kill("pathlib:Path.mkdir", "shards", "after"), ["run.json", "shards"], [SHARD.format(0)]),
    # generation
    "engine-loaded": (kill(GENERATE, "", "before"), ["shards"], [SHARD.format(0)]),
    "mid-shard-0": (kill(GENERATE, "", "after"), ["shards"], [SHARD.format(0)]),
    "first-batch-of-shard-1": (kill(GENERATE, "", "before", nth=3), [SHARD.format(0)], [SHARD.format(1)]),
    "shard-1-half-written": (
        kill("pyarrow.parquet:write_table", "shard-00001", "torn"),
        ["shards/.shard-00001.parquet.tmp-*"],
        [SHARD.format(1)],
    ),
    "shard-1-written-not-renamed": (
        kill("os:replace", "shard-00001", "before"),
        ["shards/.shard-00001.parquet.tmp-*"],
        [SHARD.format(1)],
    ),
    "between-shards-2-and-3": (kill("os:replace", "shard-00002", "after"), [SHARD.format(2)], [SHARD.format(3)]),
    "last-shard-in-place": (kill("os:replace", "shard-00003", "after"), [SHARD.format(3)], ["distilled.parquet"]),
    # final phase
    "distilled-parquet-half-written": (
        kill("pyarrow.parquet:write_table", "distilled.parquet", "torn"),
        [".distilled.parquet.tmp-*"],
        ["distilled.parquet"],
    ),
    "distilled-parquet-in-place": (
        kill("os:replace", "distilled.parquet", "after"),
        ["distilled.parquet"],
        ["dropped.parquet"],
    ),
    "dropped-parquet-in-place": (kill("os:replace", "dropped.parquet", "after"), ["dropped.parquet"], ["data"]),
    "data-folder-half-saved": (
        kill("datasets.arrow_dataset:Dataset.save_to_disk", ".data.tmp", "torn"),
        [".data.tmp-*"],
        ["data"],
    ),
    "data-folder-in-place": (kill("os:rename", ".data.tmp", "after"), ["data"], ["stats.json"]),
    "stats-written-not-renamed": (kill("os:replace", "stats.json", "before"), [".stats.json.tmp-*"], ["stats.json"]),
    "stats-in-place": (kill("os:replace", "stats.json", "after"), ["stats.json"], []),
}
# A finished run whose shard 2 went missing does its final phase again over the old outputs.
REDO_KILLS = {
    "redo-stats-removed": (
        kill("pyarrow.parquet:write_table", "distilled.parquet", "before"),
        ["data", "distilled.parquet"],
        ["stats.json"],
    ),
    "redo-old-data-moved-aside": (kill("os:rename", "{output}/data", "after"), [".data.old.tmp-*"], ["data"]),
    "redo-new-data-in-place": (
        kill("os:rename", "{output}/data", "after", nth=2),
        ["data", ".data.old.tmp-*"],
        ["stats.json"],
    ),
    "redo-old-data-half-deleted": (
        kill("shutil:rmtree", ".data.old.tmp", "partly"),
        ["data", ".data.old.tmp-*"],
        ["stats.json"],
    ),
}

# --overwrite over a finished run removes its outputs (the stats first, the manifest last), then starts over.
OVERWRITE_KILLS = {
    "overwrite-stats-removed": (kill("shutil:rmtree", "{output}/data", "before"), ["data", "run.json"], ["stats.json"]),
    "overwrite-shards-half-deleted": (
        kill("shutil:rmtree", "{output}/shards", "partly"),
        ["run.json", "shards/shard-*.parquet"],
        ["stats.json", "data"],
    ),
    "overwrite-manifest-removed": (kill("pathlib:Path.unlink", "run.json", "after"), [], ["run.json", "shards"]),
}


def check_complete(output: Path, reference: Path) -> None:
    expected = sorted(row["id"] for row in ROWS)
    distilled = pq.read_table(output / "distilled.parquet").column("id").to_pylist()
    dropped = pq.read_table(output / "dropped.parquet").column("id").to_pylist()
    assert sorted(distilled + dropped) == expected  # every row exactly once
    assert sorted(datasets.load_from_disk(str(output / "data"))["id"]) == sorted(distilled)
    stats, reference_stats = (json.loads((folder / "stats.json").read_text()) for folder in (output, reference))
    assert {key: stats[key] for key in COUNTS} == {key: reference_stats[key] for key in COUNTS}
    assert stats["rows_in"] == len(ROWS) and stats["decisions"].get("dropped", 0) == len(dropped)
    assert not list(output.rglob("*.tmp-*")), "leftovers of the killed run remain"
    assert detect(output).finished


def kill_then_rerun(crasher, argv: list[str], output: Path, point: tuple, finished_after_kill: bool) -> None:
    where, present, absent = point
    code, log = crasher.run(argv, kill={**where, "match": where["match"].format(output=output)})
    assert code == 137, f"the kill point was never reached (exit {code}): {log[-3000:]}"
    for pattern in present:
        assert list(output.glob(pattern)), f"{pattern} should exist after the kill"
    for pattern in absent:
        assert not list(output.glob(pattern)), f"{pattern} should not exist after the kill"
    state = detect(output)
    assert (state is not None and state.finished) == finished_after_kill
    code, log = crasher.run(argv)
    assert code == 0, log[-3000:]


@pytest.mark.parametrize("name", list(FRESH_KILLS))
def test_a_run_killed_at_any_point_finishes_on_rerun(name, crasher, source, tiny_llama_path, reference, tmp_path):
    output = tmp_path / "run"
    argv = argv_for(source, tiny_llama_path, output)
    kill_then_rerun(crasher, argv, output, FRESH_KILLS[name], finished_after_kill=name == "stats-in-place")
    check_complete(output, reference)


@pytest.mark.parametrize("name", list(REDO_KILLS))
def test_a_final_phase_killed_over_old_outputs_finishes_on_rerun(
    name, crasher, source, tiny_llama_path, reference, tmp_path
):
    output = tmp_path / "run"
    shutil.copytree(reference, output)
    (output / "shards" / "shard-00002.parquet").unlink()
    argv = argv_for(source, tiny_llama_path, output)
    kill_then_rerun(crasher, argv, output, REDO_KILLS[name], finished_after_kill=False)
    check_complete(output, reference)


@pytest.mark.parametrize("name", list(OVERWRITE_KILLS))
def test_an_overwrite_killed_half_way_finishes_on_rerun(name, crasher, source, tiny_llama_path, reference, tmp_path):
    output = tmp_path / "run"
    shutil.copytree(reference, output)
    argv = [*argv_for(source, tiny_llama_path, output), "--overwrite"]
    kill_then_rerun(crasher, argv, output, OVERWRITE_KILLS[name], finished_after_kill=False)
    check_complete(output, reference)
