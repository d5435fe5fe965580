"""Distilling on more than one engine: Ray replicas and vLLM data parallel, with the real SmolLM2 teacher.

Every path must write the same rows, decisions and counts as one local engine with the same seeds, and a
Ray run killed half-way must finish on the rerun with every row exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cores import whole_machine_environment
from data_samples import GSM8K_TRAIN, gsm8k_distill_command

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines.base import DecodingConfig

pytestmark = pytest.mark.slow

RAY_ROWS = 50
SHARD_SIZE = 8  # 7 shards: enough for a kill to land between them
MAX_NEW_TOKENS = 40
COUNTS = ("rows_in", "rows_out", "decisions", "reasons", "reasons_by_decision", "by_task", "tokens")


def all_rows(output: Path) -> list[dict]:
    """Every row a run wrote, kept and dropped, in the order of the files."""
    kept, dropped = pq.read_table(output / "distilled.parquet"), pq.read_table(output / "dropped.parquet")
    return kept.to_pylist() + dropped.to_pylist()


def counts(output: Path) -> dict:
    stats = json.loads((output / "stats.json").read_text())
    return {key: stats[key] for key in COUNTS}


def local_config(smollm2_path: str, output: Path, **changes) -> DistillConfig:
    config = DistillConfig(
        source=SourceSpec(data=str(GSM8K_TRAIN), limit=RAY_ROWS),
        teacher=smollm2_path,
        output=str(output),
        shard_size=SHARD_SIZE,
        decoding=DecodingConfig(max_new_tokens=MAX_NEW_TOKENS),
        **changes,
    )
    return config


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster on 2 CPUs for the module; its address lets CLI runs join it."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(smollm2_path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("local") / "run"
    distill(local_config(smollm2_path, output), show_progress=False)
    return output


def test_ray_replicas_write_what_the_local_engine_writes(smollm2_path, ray_cluster, local_run, tmp_path):
    output = tmp_path / "ray"
    config = local_config(smollm2_path, output, executor="ray")
    config.ray.cpus_per_replica = 2  # the same torch threads as the local run: the same greedy tokens
    stats = distill(config, show_progress=False).stats

    assert all_rows(output) == all_rows(local_run)
    assert counts(output) == counts(local_run)
    assert stats["engine"]["executor"] == "ray" and stats["engine"]["engine"] == "transformers"
    assert stats["throughput"]["generated_rows"] == RAY_ROWS


def cli_command(smollm2_path: str, output: Path, address: str) -> list[str]:
    return gsm8k_distill_command(
        RAY_ROWS,
        smollm2_path,
        output,
        shard_size=SHARD_SIZE,
        max_new_tokens=MAX_NEW_TOKENS,
        executor="ray",
        ray_address=address,
        cpus_per_replica=2,
    )


def test_a_killed_ray_run_finishes_on_the_rerun_with_every_row_once(smollm2_path, ray_cluster, local_run, tmp_path):
    output = tmp_path / "ray-killed"
    command = cli_command(smollm2_path, output, ray_cluster)
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    shards = output / "shards"
    deadline = time.monotonic() + 600
    while not (shards.is_dir() and len(list(shards.glob("shard-*.parquet"))) >= 2):
        assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
        assert time.monotonic() < deadline, "no shard was written in 10 minutes"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    written = len(list(shards.glob("shard-*.parquet")))
    assert 2 <= written < -(-RAY_ROWS // SHARD_SIZE), "the kill should land before the last shard"
    assert not (output / "stats.json").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = all_rows(output)
    assert sorted(row["id"] for row in rows) == sorted(row["id"] for row in all_rows(local_run))
    assert rows == all_rows(local_run)
    stats = json.loads((output / "stats.json").read_text())
    assert stats["throughput"]["resumed_shards"] == written
    assert stats["throughput"]["generated_rows"] == RAY_ROWS - written * SHARD_SIZE


def replica_pids() -> set[int]:
    """The processes of this cluster's teacher replicas (Ray names them after the actor class)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"MapBatches(TeacherReplica)" in status.read_bytes():
                found.add(int(status.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return found


def test_a_replica_killed_mid_run_is_replaced_and_the_run_finishes(smollm2_path, ray_cluster, local_run, tmp_path):
    output = tmp_path / "ray-replica-killed"
    run = subprocess.Popen(
        cli_command(smollm2_path, output, ray_cluster), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    shards = output / "shards"
    deadline = time.monotonic() + 600
    while not (shards.is_dir() and any(shards.glob("shard-*.parquet"))):
        assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
        assert time.monotonic() < deadline, "no shard was written in 10 minutes"
        time.sleep(0.2)
    victims = replica_pids()
    assert victims, "the replica's process should be running"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _, stderr = run.communicate(timeout=900)
    assert run.returncode == 0, stderr.decode()[-3000:]
    assert all_rows(output) == all_rows(local_run)


VLLM_ROWS = 48


def vllm_run(smollm2_path: str, output: Path, replicas: int) -> subprocess.CompletedProcess:
    command = gsm8k_distill_command(
        VLLM_ROWS,
        smollm2_path,
        output,
        engine="vllm",
        shard_size=6,
        max_new_tokens=MAX_NEW_TOKENS,
        data_parallel_size=replicas,
    )
    # the replicas split the cores themselves, so the runs get the whole machine, not a test worker's share
    environment = whole_machine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)


def test_two_vllm_replicas_write_what_one_writes(smollm2_path, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    finished = vllm_run(smollm2_path, one, 1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    finished = vllm_run(smollm2_path, two, 2)
    assert finished.returncode == 0, finished.stderr[-3000:]

    assert all_rows(two) == all_rows(one)
    assert counts(two) == counts(one)
    stats = json.loads((two / "stats.json").read_text())
    assert stats["engine"]["data_parallel_size"] == 2
    assert stats["throughput"]["generated_rows"] == VLLM_ROWS
