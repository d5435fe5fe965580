"""A run to a URL is finished only when its URL is, and a resume never mixes rows made under another config."""

import pyarrow.parquet as pq
import pytest
import test_distill

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.remote_output import RemoteOutput
from sdd_data.distill.stage import distill

source = test_distill.source  # the distill tests' rows and stand-in teacher, rewritten by the scripted engine
teacher = test_distill.teacher


class Killed(Exception):
    """Stands for the process dying at that point."""


def config_for(source, teacher, url, template="chat", **options):
    return DistillConfig(
        source=SourceSpec(data=source),
        teacher=teacher,
        engine="scripted",
        output=url,
        shard_size=2,
        template=template,
        **options,
    )


@pytest.fixture
def url(tmp_path):
    import fsspec

    address = f"file://{tmp_path}/remote/run"
    return address, fsspec.core.url_to_fs(address)


def on_machine(monkeypatch, tmp_path, name: str) -> None:
    """Work as machine `name`: its own cache, so its own mirror of the URL."""
    monkeypatch.setenv("SDD_DATA_CACHE", str(tmp_path / f"cache-{name}"))


def killed_after_shards(monkeypatch, count: int) -> None:
    """The next run dies right after its `count`-th shard reaches the URL."""
    real_put = RemoteOutput.put_shard
    done = []

    def put_then_die(self, shard):
        real_put(self, shard)
        done.append(shard)
        if len(done) == count:
            raise Killed

    monkeypatch.setattr(RemoteOutput, "put_shard", put_then_die)


def remote_rows(url) -> list[dict]:
    _, (fs, root) = url
    with fs.open(f"{root}/distilled.parquet", "rb") as handle:
        return pq.read_table(handle).to_pylist()


def test_a_rerun_finishes_the_url_when_only_the_mirror_was_finished(source, teacher, url, tmp_path, monkeypatch):
    address, (fs, root) = url
    on_machine(monkeypatch, tmp_path, "a")
    first = distill(config_for(source, teacher, address), show_progress=False)
    fs.rm(f"{root}/stats.json")  # killed just before the stats file was copied
    again = distill(config_for(source, teacher, address), show_progress=False)
    assert fs.exists(f"{root}/stats.json"), "the rerun finishes the URL, not only the local mirror"
    assert again.stats["decisions"] == first.stats["decisions"]
    fs.rm(root, recursive=True)  # the URL folder deleted: the run is not finished any more
    test_distill.CALLS.clear()
    distill(config_for(source, teacher, address), show_progress=False)
    assert test_distill.CALLS, "nothing at the URL: the rows are made again"
    assert sorted(path.rsplit("/", 1)[-1] for path in fs.ls(root, detail=False)) == [
        "data",
        "distilled.parquet",
        "dropped.parquet",
        "run.json",
        "shards",
        "stats.json",
    ]


def test_a_resume_at_a_url_never_mixes_shards_of_another_config(source, teacher, url, tmp_path, monkeypatch):
    address, _ = url
    on_machine(monkeypatch, tmp_path, "clean")
    clean = distill(config_for(source, teacher, str(tmp_path / "clean")), show_progress=False)

    on_machine(monkeypatch, tmp_path, "a")
    with monkeypatch.context() as patch:
        killed_after_shards(patch, 1)
        with pytest.raises(Killed):
            distill(config_for(source, teacher, address, template="sdft"), show_progress=False)
    on_machine(monkeypatch, tmp_path, "b")
    with monkeypatch.context() as patch:
        killed_after_shards(patch, 1)
        with pytest.raises(Killed):
            distill(config_for(source, teacher, address, overwrite=True), show_progress=False)
    on_machine(monkeypatch, tmp_path, "a")  # machine A comes back, now with B's config
    finished = distill(config_for(source, teacher, address), show_progress=False)
    assert finished.stats["template"]["name"] == "chat"
    expected = pq.read_table(clean.output / "distilled.parquet").to_pylist()
    assert remote_rows(url) == expected, "every row at the URL was made under the chat template"


def test_a_run_killed_at_any_copy_to_the_url_finishes_there_when_run_again(source, teacher, url, tmp_path, monkeypatch):
    """Kill the run just before each of its copies to the URL (file by file), rerun it: the URL ends whole."""
    import fsspec

    on_machine(monkeypatch, tmp_path, "clean")
    clean = distill(config_for(source, teacher, str(tmp_path / "clean")), show_progress=False)
    expected = pq.read_table(clean.output / "distilled.parquet").to_pylist()
    fs = fsspec.filesystem("file")
    real_put = type(fs).put_file
    puts: list[str] = []

    def counting_put(self, local, remote, **kwargs):
        puts.append(remote)
        if len(puts) == plan["kill_at"]:
            raise Killed
        return real_put(self, local, remote, **kwargs)

    plan = {"kill_at": 0}
    monkeypatch.setattr(type(fs), "put_file", counting_put)
    distill(config_for(source, teacher, f"file://{tmp_path}/count"), show_progress=False)
    total = len(puts)
    assert total >= 6  # the manifest, three shards, the two tables, the data folder's files, the stats
    for kill_at in range(1, total + 1):
        puts.clear()
        plan["kill_at"] = kill_at
        address = f"file://{tmp_path}/killed-{kill_at}/run"
        on_machine(monkeypatch, tmp_path, f"killed-{kill_at}")
        with pytest.raises(Killed):
            distill(config_for(source, teacher, address), show_progress=False)
        plan["kill_at"] = 0
        finished = distill(config_for(source, teacher, address), show_progress=False)
        root = f"{tmp_path}/killed-{kill_at}/run"
        assert fs.exists(f"{root}/stats.json"), f"killed before copy {kill_at} of {total}: the URL is unfinished"
        with fs.open(f"{root}/distilled.parquet", "rb") as handle:
            assert pq.read_table(handle).to_pylist() == expected, f"killed before copy {kill_at}"
        assert finished.stats["decisions"] == clean.stats["decisions"]
