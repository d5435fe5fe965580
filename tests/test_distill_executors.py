"""Executors with scripted engines: the streaming feed, resuming across executors, replica retries, device splits."""

import json

import pyarrow.parquet as pq
import pytest
import test_distill
from test_distill import ScriptedEngine

from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.distill import data_parallel
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.stage import distill
from sdd_data.distill.templates import get_template
from sdd_data.engines import ENGINES
from sdd_data.errors import SddError

FEEDS: list[list] = []


source = test_distill.source  # the fixtures of the distill tests, with their scripted rows
teacher = test_distill.teacher


def config_for(source, teacher, output, engine="scripted"):
    return DistillConfig(
        source=SourceSpec(data=source), teacher=teacher, engine=engine, output=str(output), shard_size=2
    )


class StreamingEngine(ScriptedEngine):
    """Reads all the feed holds before answering anything, then finishes those requests last first; reads the
    feed again until it stays dry (retries join it as requests finish)."""

    name = "streaming"

    def generate_stream(self, requests):
        while taken := list(requests):
            FEEDS.append([key for key, _, _, _ in taken])
            for key, prompt, seed, decoding in reversed(taken):
                [generation] = self.generate([prompt], [seed], decoding)
                yield key, generation


ENGINES.add("streaming", StreamingEngine)


def rows_of(output):
    kept, dropped = pq.read_table(output / "distilled.parquet"), pq.read_table(output / "dropped.parquet")
    return kept.to_pylist() + dropped.to_pylist()


def test_a_streaming_engine_gets_every_shard_in_one_feed_and_shards_land_as_they_finish(
    source, teacher, tmp_path, monkeypatch
):
    plain = distill(config_for(source, teacher, tmp_path / "plain"), show_progress=False)
    written: list[int] = []
    original_write = RunDir.write_shard

    def recording_write(run, index, table):
        written.append(index)
        original_write(run, index, table)

    monkeypatch.setattr(RunDir, "write_shard", recording_write)
    FEEDS.clear()
    streamed = distill(config_for(source, teacher, tmp_path / "streamed", engine="streaming"), show_progress=False)

    assert len(FEEDS) == 1, "one feed for the whole run, not one call per shard"
    assert {shard for shard, _ in FEEDS[0]} == {0, 1, 2}
    assert written == [2, 1, 0], "a shard is written when its own rows are done"
    assert rows_of(streamed.output) == rows_of(plain.output)
    for key in ("decisions", "reasons", "tokens"):
        assert streamed.stats[key] == plain.stats[key]


def test_a_run_resumes_whatever_the_executor_and_under_an_older_manifest(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    manifest_path = first.output / "run.json"
    manifest = json.loads(manifest_path.read_text())
    # a manifest from before the executors existed held data_parallel_size in the run's identity
    manifest["identity"]["config"]["data_parallel_size"] = 1
    manifest["identity"]["hash"] = "an-older-hash"
    manifest_path.write_text(json.dumps(manifest))
    (first.output / "shards" / "shard-00001.parquet").unlink()

    config.ray.replicas = 4  # how the rest runs does not change what the run is
    second = distill(config, show_progress=False)
    assert second.stats["throughput"]["resumed_shards"] == 2
    assert rows_of(second.output) == rows_of(first.output)


def test_data_parallel_needs_the_vllm_engine(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    config.engine_options.data_parallel_size = 2
    with pytest.raises(SddError, match="--executor ray --replicas 2"):
        distill(config, show_progress=False)


def test_cpu_replicas_split_the_cores_evenly(monkeypatch):
    monkeypatch.delenv(data_parallel.CPU_BIND_VARIABLE, raising=False)
    monkeypatch.setattr(data_parallel.os, "sched_getaffinity", lambda _: {0, 1, 2, 3, 4})
    assert data_parallel._cpu_environments(2) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0,1", "OMP_NUM_THREADS": "2"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2,3", "OMP_NUM_THREADS": "2"},
    ]
    with pytest.raises(SddError, match="need at least as many cores"):
        data_parallel._cpu_environments(6)
    monkeypatch.setenv(data_parallel.CPU_BIND_VARIABLE, "0-1|2-3")
    assert data_parallel._cpu_environments(2) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0-1"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2-3"},
    ]
    with pytest.raises(SddError, match="one per replica"):
        data_parallel._cpu_environments(3)


def test_gpu_replicas_each_see_their_own_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert data_parallel._gpu_environments(2, 2, 8) == [
        {"CUDA_VISIBLE_DEVICES": "4,5"},
        {"CUDA_VISIBLE_DEVICES": "6,7"},
    ]
    with pytest.raises(SddError, match="need 6 GPUs; 4 are visible"):
        data_parallel._gpu_environments(3, 2, 8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert data_parallel._gpu_environments(3, 1, 3) == [{"CUDA_VISIBLE_DEVICES": str(gpu)} for gpu in range(3)]


class FailingEngine(ScriptedEngine):
    """Fails its first `failures` generate calls (across reloads), then answers from the script."""

    failures = 0

    def generate(self, prompts, seeds, decoding, progress=None):
        if FailingEngine.failures > 0:
            FailingEngine.failures -= 1
            raise RuntimeError("the engine fell over")
        return super().generate(prompts, seeds, decoding, progress)


def replica_with(source_path, teacher_path, tmp_path):
    from sdd_data.distill.ray_executor import TeacherReplica

    config = config_for(source_path, teacher_path, tmp_path / "out")
    replica = object.__new__(TeacherReplica)  # as Ray builds it, without loading a real engine
    replica._load = lambda: FailingEngine(teacher_path, config.engine_options)
    replica.engine, replica.config = replica._load(), config
    replica.template = get_template("chat", {"math", "free"})
    rows = load_rows(SourceSpec(data=source_path)).rows
    return replica, rows


def test_a_replica_retries_a_failed_shard_once_with_a_fresh_engine(source, teacher, tmp_path):
    replica, rows = replica_with(source, teacher, tmp_path)
    first_engine = replica.engine
    FailingEngine.failures = 1
    table = replica._shards([(0, rows[:2])])[0]
    assert replica.engine is not first_engine
    assert table.column("reason").to_pylist() == ["ok", "answer_mismatch"]


def test_a_shard_that_fails_twice_is_recorded_with_engine_error(source, teacher, tmp_path):
    replica, rows = replica_with(source, teacher, tmp_path)
    FailingEngine.failures = 2
    table = replica._shards([(3, rows[:2])])[3]
    assert table.column("id").to_pylist() == [row["id"] for row in rows[:2]]
    assert set(table.column("reason").to_pylist()) == {"engine_error"}
    assert set(table.column("decision").to_pylist()) == {"original"}
    assert [messages[-1]["content"] for messages in table.column("messages").to_pylist()] == [
        row["response"] for row in rows[:2]
    ]


class StoppedProcess:
    """A replica process that has already exited with `exitcode`."""

    def __init__(self, exitcode: int):
        self.exitcode = exitcode

    def is_alive(self) -> bool:
        return False


def follow(messages: list[tuple], processes: list) -> tuple:
    import queue

    from sdd_data.distill.execution import ExecutionReport

    pipe: queue.Queue = queue.Queue()
    for message in messages:
        pipe.put(message)
    report, rows = ExecutionReport(), []
    written: list[int] = []
    data_parallel._follow(processes, pipe, report, rows.append, written.append)
    assert sorted(written) == sorted(payload[0] for kind, _, payload in messages if kind == "shard")
    return report, rows


def test_the_replicas_messages_are_counted_even_after_the_replicas_exit():
    messages = [
        ("engine", 0, {"engine": "vllm"}),
        ("rows", 0, 3),
        ("rows", 1, 2),
        ("shard", 0, (0, 3, 30)),
        ("shard", 1, (1, 2, 20)),
        ("done", 0, None),
        ("done", 1, None),
    ]
    report, rows = follow(messages, [StoppedProcess(0), StoppedProcess(0)])
    assert (report.generated_rows, report.generated_tokens, sum(rows)) == (5, 50, 5)
    assert report.engine == {"engine": "vllm"}


def test_a_replica_that_stops_without_finishing_stops_the_run():
    with pytest.raises(SddError, match="replica 1 stopped \\(exit code -9\\)"):
        follow([("done", 0, None)], [StoppedProcess(0), StoppedProcess(-9)])
    with pytest.raises(SddError, match="vllm replica 0: out of memory"):
        follow([("error", 0, "out of memory")], [StoppedProcess(1)])


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_a_run_to_a_url_copies_its_shards_as_it_goes_and_resumes_from_them(
    source, teacher, tmp_path, monkeypatch, scheme
):
    import fsspec

    monkeypatch.setenv("SDD_DATA_CACHE", str(tmp_path / "cache"))
    local = distill(config_for(source, teacher, tmp_path / "local"), show_progress=False)
    url = f"file://{tmp_path}/remote/run" if scheme == "file" else f"memory://runs/{tmp_path.name}/run"
    fs, root = fsspec.core.url_to_fs(url)
    copied: list[tuple[str, int]] = []  # (what reached the URL, how many shards the teacher had generated)
    original_put = fs.put_file

    def recording_put(local_path, remote_path, **kwargs):
        copied.append((remote_path.rsplit("/", 1)[-1], len(test_distill.CALLS)))
        return original_put(local_path, remote_path, **kwargs)

    monkeypatch.setattr(fs, "put_file", recording_put)
    test_distill.CALLS.clear()
    first = distill(config_for(source, teacher, url), show_progress=False)

    names = sorted(path.rsplit("/", 1)[-1] for path in fs.ls(root, detail=False))
    assert names == ["data", "distilled.parquet", "dropped.parquet", "run.json", "shards", "stats.json"]
    shard_copies = [(name, calls) for name, calls in copied if name.startswith("shard-")]
    assert copied[0] == ("run.json", 1), "the manifest goes with the first shard"
    assert shard_copies == [(f"shard-{index:05d}.parquet", index + 1) for index in range(3)], (
        "each shard reaches the URL as soon as it is written, before the next one is generated"
    )
    assert copied[-1][0] == "stats.json"
    with fs.open(f"{root}/distilled.parquet", "rb") as handle:
        assert pq.read_table(handle).to_pylist() == pq.read_table(local.output / "distilled.parquet").to_pylist()
    assert first.stats["decisions"] == local.stats["decisions"]

    # another machine: no local mirror, one shard lost with the first run's machine, the outputs not written yet
    import shutil

    shutil.rmtree(tmp_path / "cache")
    for name in ("stats.json", "shards/shard-00002.parquet"):
        fs.rm(f"{root}/{name}")
    test_distill.CALLS.clear()
    second = distill(config_for(source, teacher, url), show_progress=False)
    assert test_distill.CALLS == [1], "only the lost shard's rows are generated again"
    assert second.stats["throughput"]["resumed_shards"] == 2
    with fs.open(f"{root}/dropped.parquet", "rb") as handle:
        assert pq.read_table(handle).to_pylist() == pq.read_table(local.output / "dropped.parquet").to_pylist()
    assert rows_of(second.output) == rows_of(local.output)
