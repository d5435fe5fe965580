"""A distill run killed with SIGKILL half-way finishes on rerun with every row exactly once."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
from data_samples import GSM8K_TRAIN, gsm8k_distill_command

from sdd_data.data.sources import SourceSpec, load_rows

ROWS = 120


def distill_command(teacher: str, output: Path) -> list[str]:
    return gsm8k_distill_command(ROWS, teacher, output, shard_size=6, batch_size=1, max_new_tokens=24)


def test_rerun_after_sigkill_finishes_with_every_row_once(tiny_llama_path, tmp_path):
    output = tmp_path / "run"
    shards = output / "shards"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        distill_command(tiny_llama_path, output), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(list(shards.glob("shard-*.parquet"))) < 3:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    survivors = {path.name: path.stat().st_mtime_ns for path in shards.glob("shard-*.parquet")}
    assert 3 <= len(survivors) < ROWS // 6, "the run must be killed half-way"
    assert not (output / "stats.json").exists()

    rerun = subprocess.run(distill_command(tiny_llama_path, output), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "shards reused from an earlier run" in rerun.stdout
    for name, mtime in survivors.items():
        assert (shards / name).stat().st_mtime_ns == mtime, f"{name} was redone"

    expected = [row["id"] for row in load_rows(SourceSpec(data=str(GSM8K_TRAIN), limit=ROWS)).rows]
    distilled = pq.read_table(output / "distilled.parquet").column("id").to_pylist()
    dropped = pq.read_table(output / "dropped.parquet").column("id").to_pylist()
    assert sorted(distilled + dropped) == sorted(expected)
    assert len(set(distilled + dropped)) == ROWS
    assert not list(output.rglob("*.tmp-*"))
