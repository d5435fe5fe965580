"""The inspect page's data: summary numbers equal the files they come from, rows embedded whole or cut to a
bounded size, each kind of output shown, and bad input refused in one line."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from inspect_samples import CHANGED_ROW, synthetic_rows, write_distill_run, write_eval_output, write_select_output

from sdd_data.cli import main
from sdd_data.errors import SddError
from sdd_data.inspect import InspectConfig, inspect_output
from sdd_data.inspect.page import embedded_json
from sdd_data.inspect.rows import CUT_MARK, categorical, cut_texts, text_limit


class PageReader(HTMLParser):
    """The numbers a page marks with data-stat, and its embedded JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, str] = {}
        self.in_data = False
        self.data = ""

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if "data-stat" in values:
            self.stats[values["data-stat"]] = values["data-value"]
        self.in_data = tag == "script" and values.get("id") == "page-data"

    def handle_endtag(self, tag):
        self.in_data = False

    def handle_data(self, data):
        if self.in_data:
            self.data += data


def read_page(path: Path) -> tuple[dict[str, str], dict]:
    reader = PageReader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.stats, json.loads(reader.data)


def decode(column: dict | list) -> list:
    return [column["labels"][code] for code in column["codes"]] if isinstance(column, dict) else column


def test_the_distill_summary_equals_stats_json_and_every_row_is_embedded(distilled, capsys):
    result = inspect_output(InspectConfig(path=str(distilled)))
    assert result.path == distilled / "report.html" and result.size == result.path.stat().st_size
    assert f"wrote {result.path} (" in capsys.readouterr().out
    stats = json.loads((distilled / "stats.json").read_text())
    marked, page = read_page(result.path)
    expected = {
        "rows_in": stats["rows_in"],
        "rows_out": stats["rows_out"],
        **{f"decisions.{name}": count for name, count in stats["decisions"].items()},
        **{f"reasons.{name}": count for name, count in stats["reasons"].items()},
        **{f"tokens.{name}": count for name, count in stats["tokens"].items()},
        **{f"throughput.{name}": value for name, value in stats["throughput"].items()},
        **{f"by_task.{task}.rows": values["rows"] for task, values in stats["by_task"].items()},
        **{
            f"reasons_by_decision.{decision}.{reason}": count
            for decision, reasons in stats["reasons_by_decision"].items()
            for reason, count in reasons.items()
        },
        **{f"decoding.{key}": stats["config"][key] for key in ("max_new_tokens", "temperature", "top_p", "seed")},
    }
    assert {key: marked[key] for key in expected} == {key: str(value) for key, value in expected.items()}
    assert result.view.summary["decisions"] == stats["decisions"] and result.view.summary["by_task"] == stats["by_task"]

    rows = page["rows"]
    kept = pq.read_table(distilled / "distilled.parquet").to_pylist()
    dropped = pq.read_table(distilled / "dropped.parquet").to_pylist()
    assert rows["n"] == stats["rows_in"] == len(kept) + len(dropped)
    columns = rows["columns"]
    assert columns["id"] == [row["id"] for row in kept + dropped]
    for name in ("decision", "reason", "task"):
        assert decode(columns[name]) == [row[name] for row in kept + dropped]
    assert columns["teacher_response"] == [row["teacher_response"] or "" for row in kept + dropped]
    assert rows["texts_cut"] == 0 and rows["filters"] == ["decision", "reason", "task"]


def test_the_teacher_quantization_note_is_shown(tmp_path):
    run = write_distill_run(tmp_path / "run", synthetic_rows(8))
    html = inspect_output(InspectConfig(path=str(run)), show_progress=False).path.read_text()
    assert "<th>quantization</th><td>dequantized to float32 from GGUF Q4_1</td>" in html


def test_a_published_folder_shows_its_config_with_the_dropped_split(distilled, tmp_path):
    from sdd_data.publish import PublishConfig, publish

    publish(PublishConfig(distilled=str(distilled), output_dir=str(tmp_path / "published"), license="mit"))
    result = inspect_output(InspectConfig(path=str(tmp_path / "published"), output=str(tmp_path / "page.html")))
    marked, page = read_page(result.path)
    stats = json.loads((distilled / "stats.json").read_text())
    assert result.view.kind == "distill" and page["rows"]["n"] == stats["rows_in"]
    assert {marked[f"decisions.{name}"] for name in stats["decisions"]} == {str(v) for v in stats["decisions"].values()}
    assert "dropped" in decode(page["rows"]["columns"]["decision"])


def test_text_limit_is_the_largest_that_fits_the_budget():
    lengths = [10, 50, 200, 1000]
    assert text_limit(lengths, 5000, 10_000) == 5000
    limit = text_limit(lengths, 5000, 500)
    assert sum(min(length, limit) for length in lengths) <= 500 < sum(min(length, limit + 1) for length in lengths)
    texts, limit, cut = cut_texts({"a": ["x" * 300, None, "short"]}, 100, 10_000)
    assert (limit, cut) == (100, 1) and texts["a"] == ["x" * 100 + CUT_MARK, "", "short"]
    assert categorical(["b", None, "b", "a"]) == {"labels": ["b", "", "a"], "codes": [0, 1, 0, 2]}


def test_a_large_run_stays_within_its_text_budget(tmp_path):
    run = write_distill_run(tmp_path / "run", synthetic_rows(3000))
    result = inspect_output(InspectConfig(path=str(run), max_text_mb=0.3), show_progress=False)
    _, page = read_page(result.path)
    rows = page["rows"]
    texts = sum(len(text) for name in ("instruction", "response", "teacher_response") for text in rows["columns"][name])
    assert rows["n"] == 3000 and rows["texts_cut"] > 0
    assert texts <= 300_000 + rows["texts_cut"]  # each cut text ends with one mark
    assert result.size < 300_000 + 3000 * 200  # the texts' budget plus a bounded amount per row
    assert "are cut to" in result.path.read_text()


def test_script_like_text_cannot_end_the_embedded_data(tmp_path):
    hostile = dict(CHANGED_ROW, id="hostile", instruction="</script><script>alert(1)</script><!--")
    run = write_distill_run(tmp_path / "run", [dict(CHANGED_ROW), hostile])
    path = inspect_output(InspectConfig(path=str(run)), show_progress=False).path
    html = path.read_text()
    assert html.count("<script") == 2 and "alert(1)</script>" not in html
    assert read_page(path)[1]["rows"]["columns"]["instruction"][1] == hostile["instruction"]
    assert "<" not in embedded_json({"a": "<b>"})


def test_the_select_view_lists_every_outcome_with_what_a_row_conflicted_with(distilled, tmp_path):
    selected = write_select_output(distilled, tmp_path / "selected")
    result = inspect_output(InspectConfig(path=str(selected)), show_progress=False)
    marked, page = read_page(result.path)
    outcome = pq.read_table(selected / "outcome.parquet").to_pylist()
    columns = page["rows"]["columns"]
    assert columns["id"] == [row["id"] for row in outcome]
    outcomes = dict(zip(columns["id"], decode(columns["outcome"])))
    first, duplicate, conflict = (row["id"] for row in outcome[:3])
    assert (outcomes[first], outcomes[duplicate], outcomes[conflict]) == (
        "selected",
        "near_duplicate",
        "concept_conflict",
    )
    conflicts = dict(zip(columns["id"], columns["conflict"]))
    assert conflicts[duplicate] == f"near duplicate of row {first}"
    assert "apple" in conflicts[conflict] and "pear" in conflicts[conflict]
    assert outcomes["empty"] == "set_aside" and marked["set_aside"] == "1"
    assert dict(zip(columns["id"], columns["reason"]))["empty"] == "dropped_by_distill:invalid_row:instruction_empty"
    # texts of rows that were not selected come from the distill run the selection read
    assert dict(zip(columns["id"], columns["instruction"]))[duplicate]
    assert marked["clusters.0.budget"] == "1" and marked["clusters.1.size"] == "1"
    assert marked["outcomes.budget_exhausted"] == str(len(outcome) - 4)


def test_the_eval_view_shows_scores_retention_and_acceptance(tmp_path):
    folder = write_eval_output(tmp_path / "eval")
    result = inspect_output(InspectConfig(path=str(folder)), show_progress=False)
    marked, page = read_page(result.path)
    report = json.loads((folder / "results.json").read_text())
    assert page["rows"] is None and result.view.kind == "eval"
    assert marked["scores.mc:arc_easy.pruned"] == "45.0"
    retained = report["retention"]["recovered"]["average"]
    assert float(marked["retention.average.recovered"]) == pytest.approx(retained, abs=0.01)
    assert marked["retention.nll:heldout.pruned"] == ""  # lower is better: no retention
    assert marked["speculative.recovered.acceptance_rate"] == "62.5"
    assert result.path.read_text().count("<svg") == 3


def test_the_command_takes_the_folder_as_its_argument(distilled, tmp_path, capsys):
    assert main(["inspect", str(distilled), "--output", str(tmp_path / "page.html")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"wrote .*page\.html \(\d+\.\d\d MB, distill view\)", printed)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp, "is not a distill run, a select output"),
        (lambda tmp: (tmp / "config.json").write_text("{}") and tmp, "is a model checkpoint"),
        (lambda tmp: (tmp / "run.json").write_text("{}") and tmp, "unfinished distill output"),
    ],
)
def test_what_is_not_a_finished_stage_output_is_one_line(make, message, tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    make(folder)
    assert main(["inspect", str(folder)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (folder / "report.html").exists()


def test_an_output_in_a_missing_folder_is_refused(distilled, tmp_path):
    with pytest.raises(SddError, match="does not exist"):
        inspect_output(InspectConfig(path=str(distilled), output=str(tmp_path / "missing" / "page.html")))


def test_publish_with_report_links_the_page_from_the_card(distilled, tmp_path):
    from sdd_data.publish import PublishConfig, publish

    folder = tmp_path / "published"
    result = publish(PublishConfig(distilled=str(distilled), output_dir=str(folder), license="mit", report=True))
    page = folder / "data" / result.config_name / "report.html"
    assert f"data/{result.config_name}/report.html" in result.written and page.is_file()
    card = (folder / "README.md").read_text()
    assert f"[`data/{result.config_name}/report.html`](data/{result.config_name}/report.html)" in card
    provenance = json.loads((folder / "sdd_data.json").read_text())["configs"][result.config_name]
    assert provenance["report"] == f"data/{result.config_name}/report.html"
    marked, embedded = read_page(page)
    stats = json.loads((distilled / "stats.json").read_text())
    assert embedded["rows"]["n"] == stats["rows_in"] and marked["rows_in"] == str(stats["rows_in"])
    text = page.read_text()  # made from the published provenance: neither the run's nor the teacher's local path
    assert str(distilled) not in text and str(distilled.parent / "teacher") not in text and "<th>teacher</th>" in text
    # the page is data, not a split: the config still loads as before
    import datasets

    assert len(datasets.load_dataset(str(folder), result.config_name, split="train")) == stats["rows_out"]


def test_publish_without_report_writes_no_page(distilled, tmp_path):
    from sdd_data.publish import PublishConfig, publish

    result = publish(PublishConfig(distilled=str(distilled), output_dir=str(tmp_path / "published")))
    assert not any(path.endswith(".html") for path in result.written)
    assert "report.html" not in (tmp_path / "published" / "README.md").read_text()


def test_a_push_with_report_puts_the_page_in_the_same_commit(hub, distilled):
    from hub_fixtures import USER

    from sdd_data.publish import PublishConfig, publish

    repo_id = f"{USER}/inspected"
    result = publish(PublishConfig(distilled=str(distilled), repo_id=repo_id, license="mit", report=True))
    files = hub.files(repo_id)
    page = files["data/gsm8k/report.html"]
    assert hub.repo(repo_id).commits[-1].oid == result.commit and "data/gsm8k/report.html" in result.written
    text = page if isinstance(page, str) else bytes(page).decode()
    assert f"{repo_id} · distill" in text and "(data/gsm8k/report.html)" in bytes(files["README.md"]).decode()


def test_inspect_is_a_pipeline_step(distilled, tmp_path):
    import yaml

    from sdd_data.pipeline import PipelineConfig, run_pipeline

    pipeline = tmp_path / "pipeline.yaml"
    page = tmp_path / "page.html"
    pipeline.write_text(yaml.safe_dump({"steps": [{"inspect": {"path": str(distilled), "output": str(page)}}]}))
    (result,) = run_pipeline(PipelineConfig(pipeline=str(pipeline)))
    assert result.path == page and page.is_file()


def _damaged(report: dict, change: str) -> dict:
    task = next(iter(report["tasks"]))
    model = next(iter(report["tasks"][task]["scores"]))
    if change == "models a list":
        report["models"] = list(report["models"])
    elif change == "a task an int":
        report["tasks"][task] = 7
    elif change == "a score a string":
        report["tasks"][task]["scores"][model] = "high"
    elif change in ("a score NaN", "a score infinite"):
        report["tasks"][task]["scores"][model] = float("nan" if change == "a score NaN" else "inf")
    return report


@pytest.mark.parametrize(
    "change", ["models a list", "a task an int", "a score a string", "a score NaN", "a score infinite"]
)
def test_a_damaged_results_file_is_one_line_or_a_page_never_a_crash(change, tmp_path, capsys):
    folder = write_eval_output(tmp_path / "eval")
    results = folder / "results.json"
    results.write_text(json.dumps(_damaged(json.loads(results.read_text()), change)))
    code = main(["inspect", str(folder), "--output", str(tmp_path / "page.html")])
    captured = capsys.readouterr()
    if code == 0:
        assert (tmp_path / "page.html").is_file()
    else:
        assert code == 2 and len(captured.err.strip().splitlines()) == 1, captured.err
        assert "results.json is damaged" in captured.err


def test_a_garbage_stats_file_or_a_nan_text_budget_is_one_line(distilled, tmp_path, capsys):
    damaged = tmp_path / "damaged-run"
    shutil.copytree(distilled, damaged)
    (damaged / "stats.json").write_text("garbage")
    assert main(["inspect", str(damaged), "--output", str(tmp_path / "page.html")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "damaged" in err
    assert main(["inspect", str(distilled), "--max-text-mb", "nan", "--output", str(tmp_path / "p.html")]) == 2
    assert "max_text_mb must be a finite number" in capsys.readouterr().err
