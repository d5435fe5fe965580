"""A table of bad inputs a user can give any command: each is one line on stderr and leaves no output behind.

Every case runs the real CLI (`sdd_data.cli.main`) in this process, in a folder of small broken files. It checks
the exit status (2), that stderr is exactly one line naming the problem, and that the output the command was
asked to write does not exist afterwards (or, for a folder that existed, holds what it held before).
The categories are listed in docs/bad-input.md.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdd_data.cli import main

SFT_RECIPE = str(Path(__file__).parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml")
ROWS = [{"instruction": f"Question {i}?", "response": f"Answer {i}."} for i in range(6)]


@dataclass(frozen=True)
class BadInput:
    """One bad input: the command (built in the work folder), the error it must give, and what it must not write."""

    name: str
    category: str
    argv: Callable[[Workspace], list[str]]
    error: str
    """A regular expression the one-line message must match."""
    output: str | None = None
    """The path (in the work folder) the command was asked to write."""
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set for the command (the Hub's address, offline mode)."""


class Workspace:
    """A folder of good and broken inputs; `path(name)` is a file or folder in it."""

    def __init__(self, root: Path, model: str):
        self.root, self.model = root, model
        lines = lambda rows: "".join(json.dumps(row) + "\n" for row in rows)  # noqa: E731
        files = {
            "ok.jsonl": lines(ROWS),
            "empty.jsonl": "",
            "broken.jsonl": lines(ROWS[:2]) + '{"instruction": "q", \n',
            "list-row.jsonl": lines(ROWS[:1]) + '["a", "b"]\n',
            "notes.txt": "plain text\n",
            "duplicate-ids.jsonl": lines([{**ROWS[0], "id": "same"}, {**ROWS[1], "id": "same"}]),
            "no-response.jsonl": lines([{"instruction": "q"}, {"instruction": "r"}] * 3),
            "all-invalid.jsonl": lines([{"instruction": "", "response": ""}] * 3),
            "bad.yaml": "key: [unclosed\n",
            "list.yaml": "- a\n- b\n",
            "unknown-key.yaml": "data: ok.jsonl\nno_such_option: 1\n",
            "template-user-list.yaml": "name: mine\nuser: [not, a, string]\n",
            "mc-fields.jsonl": lines(ROWS[:2]),
            "mc-gold.jsonl": lines([{"query": "Pick one.", "choices": ["a", "b"], "gold": 7}]),
            "mc-ok.jsonl": lines([{"query": "Pick one.", "choices": ["a", "b"], "gold": 0}]),
            "slerp-ok.yaml": f"merge_method: slerp\nbase_model: {model}\nmodels:\n  - model: {model}\n"
            f"  - model: {model}\nparameters:\n  t: 0.5\n",
            "slerp-t.yaml": f"merge_method: slerp\nbase_model: {model}\nmodels:\n  - model: {model}\n"
            f"  - model: {model}\nparameters:\n  t: 1.5\n",
            "unknown-stage.yaml": "steps:\n  - polish: {data: ok.jsonl}\n",
            "unknown-step-option.yaml": "steps:\n  - distill: {data: ok.jsonl, teacher: x, colour: red}\n",
            "not-empty/notes.txt": "someone's notes\n",
            "other-run/run.json": json.dumps({"identity": {"config": {"teacher": "another"}}}),
            "damaged-run/run.json": "{not json",
            "weightless/config.json": json.dumps({"model_type": "llama", "num_hidden_layers": 2}),
            "damaged-config/config.json": "{not json",
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            for previous, name in zip("abcdefgh", "bcdefghi")
        )  # a few hundred bytes that expand to 10 * 6^8 values
        binary = {
            "bad-utf8.jsonl": b'{"instruction": "q", "response": "caf\xe9"}\n',
            "bad-utf8.yaml": b"data: ok.jsonl\nteacher: caf\xe9\n",
            "bad-utf8-pipeline.yaml": b"steps:\n  - distill: {data: caf\xe9.jsonl}\n",
            "bad-utf8-template.yaml": b"user: 'Rewrite {instruction} \xff'\n",
            "bad-utf8-mc.jsonl": b'{"query": "Pick \xff", "choices": ["a", "b"], "gold": 0}\n',
            "bomb.yaml": bomb.encode(),
            "bomb-pipeline.yaml": ("steps:\n  - distill: {data: ok.jsonl}\n" + bomb).encode(),
            "nested-phrases.yaml": b"data: ok.jsonl\nbanned_phrases: [x, [y]]\n",
        }
        for name, raw in binary.items():
            (root / name).write_bytes(raw)
        (root / "damaged-run" / "shards").mkdir()
        (root / "an-output-file").write_text("not a folder\n")
        (root / "t1.checkpoints").mkdir()
        (root / "t1.checkpoints" / "mine.txt").write_text("my own notes\n")
        (root / "model-folder").mkdir()
        (root / "model-folder" / "config.json").write_text(json.dumps({"model_type": "llama"}))

    def path(self, name: str) -> str:
        return str(self.root / name)


def distill(*extra: str, data: str = "ok.jsonl", output: str = "out") -> Callable[[Workspace], list[str]]:
    """`sdd-data distill` on the tiny model with the transformers engine, plus `extra` options."""
    return lambda w: [
        "distill",
        "--data",
        w.path(data),
        "--teacher",
        w.model,
        "--engine",
        "transformers",
        "--output",
        w.path(output),
        *(w.path(x[1:]) if x[:1] == "@" else x for x in extra),
    ]


def command(line: str) -> Callable[[Workspace], list[str]]:
    """Any command line (shell quoting); `@name` is a file or folder in the work folder (also inside a word),
    `{model}` the tiny model."""
    words = shlex.split(line)
    return lambda w: [re.sub(r"@([\w./-]+)", lambda m: w.path(m[1]), x).replace("{model}", w.model) for x in words]


def hub_distill(data: str, teacher: str) -> Callable[[Workspace], list[str]]:
    """`sdd-data distill` from a Hub dataset or with a Hub teacher (`@name` and `{model}` as in `command`)."""
    return command(f"distill --data {data} --teacher {teacher} --output @out")


SELECT = "select --data @ok.jsonl --original-model {model} --pruned-model {model} --output @out"

CASES = [
    # Arguments and options
    BadInput("negative temperature", "arguments", distill("--temperature", "-1"), "temperature must be 0", "out"),
    BadInput("top_p above 1", "arguments", distill("--top-p", "1.5"), r"top_p must be in \(0, 1\]", "out"),
    BadInput("negative top_k", "arguments", distill("--top-k", "-3"), "top_k must be 0", "out"),
    BadInput("no new tokens", "arguments", distill("--max-new-tokens", "0"), "max_new_tokens must be", "out"),
    BadInput("no attempts", "arguments", distill("--attempts", "0"), "attempts must be at least 1", "out"),
    BadInput("empty batches", "arguments", distill("--batch-size", "0"), "batch_size must be at least 1", "out"),
    BadInput("negative lookup", "arguments", distill("--prompt-lookup", "-2"), "prompt_lookup must be 0", "out"),
    BadInput(
        "greedy retries",
        "arguments",
        distill("--attempts", "3", "--retry-temperature", "0"),
        "retry_temperature must be above 0 with attempts 3",
        "out",
    ),
    BadInput(
        "unknown training method",
        "arguments",
        command(f"train --recipe {SFT_RECIPE} --method dpo --model {{model}} --data @ok.jsonl --output @out"),
        "unknown training method 'dpo'",
        "out",
    ),
    BadInput("not a number", "arguments", distill("--max-new-tokens", "many"), "invalid int value: 'many'", "out"),
    BadInput("empty shards", "arguments", distill("--shard-size", "0"), "shard_size must be positive", "out"),
    BadInput("no rows asked for", "arguments", distill("--limit", "0"), "limit must be positive", "out"),
    BadInput("unknown engine", "arguments", distill("--engine", "turbo"), "unknown engine 'turbo'", "out"),
    BadInput("unknown executor", "arguments", distill("--executor", "slurm"), "unknown executor 'slurm'", "out"),
    BadInput(
        "data parallel without vllm",
        "arguments",
        distill("--data-parallel-size", "2"),
        "--executor ray --replicas 2",
        "out",
    ),
    BadInput("no Ray replicas", "arguments", distill("--executor", "ray", "--replicas", "0"), "replicas and", "out"),
    BadInput(
        "distill output inside a file",
        "outputs",
        distill(output="an-output-file/run"),
        r"output .*an-output-file/run is inside .*an-output-file, which is a file",
        "an-output-file",
    ),
    BadInput(
        "train output inside a file",
        "outputs",
        command(f"train --recipe {SFT_RECIPE} --model {{model}} --data @ok.jsonl --output @an-output-file/model"),
        r"is inside .*an-output-file, which is a file",
        "an-output-file",
    ),
    BadInput(
        "prune output inside a file",
        "outputs",
        command("prune --model {model} --blocks 1 --output @an-output-file/pruned"),
        r"is inside .*an-output-file, which is a file",
        "an-output-file",
    ),
    BadInput(
        "merge output inside a file",
        "outputs",
        command("merge --merge-config @slerp-ok.yaml --output @an-output-file/merged"),
        r"is inside .*an-output-file, which is a file",
        "an-output-file",
    ),
    BadInput(
        "eval output is a file",
        "outputs",
        command("eval --models 'a={model}' --tasks mc:@mc-ok.jsonl --output @an-output-file"),
        r"output .*an-output-file is a file",
        "an-output-file",
    ),
    BadInput(
        "eval output is a model folder",
        "outputs",
        command("eval --models 'a={model}' --tasks mc:@mc-ok.jsonl --output @model-folder"),
        r"model-folder holds a model output; choose a new folder",
        "model-folder",
    ),
    BadInput(
        "train checkpoints folder of someone else",
        "outputs",
        command(f"train --recipe {SFT_RECIPE} --model {{model}} --data @ok.jsonl --output @t1"),
        r"t1.checkpoints holds files sdd-data train did not write",
        "t1.checkpoints",
    ),
    BadInput("temperature NaN", "arguments", distill("--temperature", "nan"), "temperature must be a finite", "out"),
    BadInput("top_p infinite", "arguments", distill("--top-p", "inf"), "top_p must be a finite number", "out"),
    BadInput(
        "a list option with a list inside",
        "files",
        command("distill --config @nested-phrases.yaml --teacher {model} --output @out"),
        r"banned_phrases item must be a string, got \['y'\]",
        "out",
    ),
    BadInput(
        "data file not UTF-8",
        "data",
        distill(data="bad-utf8.jsonl"),
        r"bad-utf8.jsonl line 1: not valid UTF-8",
        "out",
    ),
    BadInput(
        "config file not UTF-8",
        "files",
        command("distill --config @bad-utf8.yaml --output @out"),
        r"config file .*bad-utf8.yaml line 2: not valid UTF-8",
        "out",
    ),
    BadInput(
        "pipeline file not UTF-8",
        "files",
        command("run --pipeline @bad-utf8-pipeline.yaml"),
        r"bad-utf8-pipeline.yaml line 2: not valid UTF-8",
    ),
    BadInput(
        "template file not UTF-8",
        "files",
        distill("--template", "@bad-utf8-template.yaml"),
        r"template file .*bad-utf8-template.yaml line 1: not valid UTF-8",
        "out",
    ),
    BadInput(
        "recipe not UTF-8",
        "files",
        command("train --recipe @bad-utf8.yaml --model {model} --data @ok.jsonl --output @out"),
        r"bad-utf8.yaml line 2: not valid UTF-8",
        "out",
    ),
    BadInput(
        "MC file not UTF-8",
        "evaluation",
        command("eval --models 'a={model}' --tasks mc:@bad-utf8-mc.jsonl --output @out"),
        r"bad-utf8-mc.jsonl line 1: not valid UTF-8",
        "out",
    ),
    BadInput(
        "YAML alias bomb in a config",
        "files",
        command("distill --config @bomb.yaml --output @out"),
        r"bomb.yaml expands to more than 100,000 values",
        "out",
    ),
    BadInput(
        "YAML alias bomb in a pipeline",
        "files",
        command("run --pipeline @bomb-pipeline.yaml"),
        r"bomb-pipeline.yaml expands to more than 100,000 values",
    ),
    BadInput(
        "output URL without its file system",
        "outputs",
        command("distill --data @ok.jsonl --teacher {model} --output s3://no-such-bucket/run"),
        "cannot write to s3://no-such-bucket/run: Install s3fs",
    ),
    BadInput(
        "output URL of no file system",
        "outputs",
        command("distill --data @ok.jsonl --teacher {model} --output nosuch://x/run"),
        "cannot write to nosuch://x/run: Protocol not known",
    ),
    BadInput("unknown failure policy", "arguments", distill("--on-failure", "maybe"), "on_failure must be", "out"),
    BadInput("malformed --columns", "arguments", distill("--columns", "{bad"), "argument --columns: expected", "out"),
    BadInput("malformed --extra", "arguments", distill("--extra", "a=1,b"), "argument --extra: expected", "out"),
    BadInput("zero budget", "arguments", command(f"{SELECT} --budget 0"), "budget must be positive", "out"),
    BadInput(
        "unknown selection method",
        "arguments",
        command(f"{SELECT} --method best"),
        "unknown selection method 'best'",
        "out",
    ),
    BadInput(
        "unknown prune method",
        "arguments",
        command("prune --model {model} --method magic --output @out"),
        "unknown method 'magic'",
        "out",
    ),
    BadInput(
        "too many blocks to cut",
        "arguments",
        command("prune --model {model} --blocks-to-remove 9 --output @out"),
        "can remove 1 to 1 of the model's 2 blocks, not 9",
        "out",
    ),
    BadInput(
        "a block listed twice",
        "arguments",
        command("prune --model {model} --blocks 1,1 --output @out"),
        "listed more than once",
        "out",
    ),
    BadInput(
        "publish dry run without a target",
        "arguments",
        command("publish --distilled @other-run --dry-run"),
        "give --repo-id to push to the Hub or --output-dir",
    ),
    BadInput(
        "invalid repo id",
        "hub",
        command("publish --distilled @other-run --repo-id 'me/bad name!'"),
        "'me/bad name!' is not a valid Hub repo id",
        "out",
    ),
    # Config, recipe and pipeline files
    BadInput("missing config file", "files", command("distill --config @nowhere.yaml"), "does not exist"),
    BadInput("config is not YAML", "files", command("distill --config @bad.yaml"), "is not valid YAML"),
    BadInput("config is a list", "files", command("distill --config @list.yaml"), "must hold a mapping"),
    BadInput("unknown config key", "files", command("distill --config @unknown-key.yaml"), "no_such_option"),
    BadInput(
        "template user not a string",
        "files",
        distill("--template", "@template-user-list.yaml"),
        "template-user-list.yaml.*user",
        "out",
    ),
    BadInput("unknown template", "files", distill("--template", "poetic"), "unknown template 'poetic'", "out"),
    BadInput(
        "missing recipe",
        "files",
        command("train --recipe @nowhere.yaml --data @ok.jsonl --model {model} --output @out"),
        "recipe .*nowhere.yaml does not exist",
        "out",
    ),
    BadInput(
        "unknown recipe key",
        "files",
        command(
            f"train --recipe {SFT_RECIPE} --data @ok.jsonl --model {{model}} --output @out --overrides no_such_key=1"
        ),
        "unknown key.*no_such_key",
        "out",
    ),
    BadInput(
        "merge config is a list",
        "files",
        command("merge --merge-config @list.yaml --output @out"),
        "must hold a mapping",
        "out",
    ),
    BadInput(
        "SLERP t outside [0, 1]",
        "files",
        command("merge --merge-config @slerp-t.yaml --output @out"),
        r"t must lie in \[0, 1\]",
        "out",
    ),
    BadInput("missing pipeline", "files", command("run --pipeline @nowhere.yaml"), "does not exist"),
    BadInput("unknown pipeline stage", "files", command("run --pipeline @unknown-stage.yaml"), "polish"),
    BadInput("unknown step option", "files", command("run --pipeline @unknown-step-option.yaml"), "colour"),
    # Data
    BadInput("missing data file", "data", distill(data="nowhere.jsonl"), "does not exist", "out"),
    BadInput("empty data file", "data", distill(data="empty.jsonl"), "is empty", "out"),
    BadInput(
        "malformed JSON line", "data", distill(data="broken.jsonl"), r"broken.jsonl line 3: not valid JSON", "out"
    ),
    BadInput(
        "a row that is not an object", "data", distill(data="list-row.jsonl"), "line 2: expected a JSON object", "out"
    ),
    BadInput("unsupported file type", "data", distill(data="notes.txt"), "unsupported file type '.txt'", "out"),
    BadInput("duplicate row ids", "data", distill(data="duplicate-ids.jsonl"), "'same' \\(rows 0, 1\\)", "out"),
    BadInput(
        "no response column",
        "data",
        command("select --data @no-response.jsonl --original-model {model} --pruned-model {model} --output @out"),
        "has none",
        "out",
    ),
    BadInput("no usable row", "data", distill(data="all-invalid.jsonl"), "none of its 3 rows is usable", "out"),
    BadInput("unknown preset", "data", distill("--preset", "poems"), "unknown preset 'poems'", "out"),
    BadInput("unknown task", "data", distill("--task", "poetry"), "unknown task 'poetry'", "out"),
    BadInput(
        "missing decontamination file",
        "data",
        distill("--decontaminate", "@nowhere.jsonl"),
        "nowhere.jsonl .*does not exist",
        "out",
    ),
    # Models
    BadInput(
        "missing model", "models", command("prune --model @nowhere --blocks 1 --output @out"), "does not exist", "out"
    ),
    BadInput(
        "model without weights",
        "models",
        command("prune --model @weightless --blocks 1 --output @out"),
        "cannot load the model in .*weightless",
        "out",
    ),
    BadInput(
        "damaged model config",
        "models",
        command("eval --models a=@damaged-config --tasks mc:@mc-ok.jsonl --output @out"),
        "damaged-config",
        "out",
    ),
    BadInput(
        "teacher that does not load",
        "models",
        lambda w: [
            "distill",
            "--data",
            w.path("ok.jsonl"),
            "--teacher",
            w.path("weightless"),
            "--engine",
            "transformers",
            "--output",
            w.path("out"),
        ],
        "cannot load the tokenizer in .*weightless",
        "out",
    ),
    # The Hub (nothing listens on port 9)
    BadInput(
        "unreachable Hub dataset",
        "hub",
        hub_distill("someone/dataset", "{model}"),
        "Hub .*127.0.0.1:9.* is unreachable",
        "out",
        env=(("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HUB_OFFLINE", "0")),
    ),
    BadInput(
        "unreachable Hub model",
        "hub",
        hub_distill("@ok.jsonl", "someone/model"),
        "someone/model is not in the local Hub cache and the Hub .* cannot be reached",
        "out",
        env=(("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HUB_OFFLINE", "0")),
    ),
    BadInput(
        "offline, model not cached",
        "hub",
        hub_distill("@ok.jsonl", "someone/model"),
        "HF_HUB_OFFLINE is set",
        "out",
        env=(("HF_HUB_OFFLINE", "1"),),
    ),
    BadInput(
        "Hub address without a scheme",
        "hub",
        hub_distill("someone/dataset", "{model}"),
        "HF_ENDPOINT",
        "out",
        env=(("HF_ENDPOINT", "127.0.0.1:9"), ("HF_HUB_OFFLINE", "0")),
    ),
    # Outputs and stage folders
    BadInput("output is a file", "outputs", distill(output="an-output-file"), "is a file", "an-output-file"),
    BadInput("output holds other files", "outputs", distill(output="not-empty"), "holds no sdd-data run", "not-empty"),
    BadInput(
        "output holds another run", "outputs", distill(output="other-run"), "holds results of another run", "other-run"
    ),
    BadInput(
        "damaged run manifest", "outputs", distill(output="damaged-run"), "not a readable run manifest", "damaged-run"
    ),
    BadInput(
        "publish a missing folder",
        "outputs",
        command("publish --distilled @nowhere --output-dir @out"),
        "nowhere does not exist",
        "out",
    ),
    BadInput(
        "publish a data file",
        "outputs",
        command("publish --distilled @ok.jsonl --output-dir @out"),
        "not a stage output",
        "out",
    ),
    # Evaluation
    BadInput(
        "unknown eval task",
        "evaluation",
        command("eval --models 'a={model}' --tasks trivia --output @out"),
        "unknown task 'trivia'",
        "out",
    ),
    BadInput(
        "missing MC file",
        "evaluation",
        command("eval --models 'a={model}' --tasks mc:@nowhere.jsonl --output @out"),
        "nowhere.jsonl does not exist",
        "out",
    ),
    BadInput(
        "MC rows without a question",
        "evaluation",
        command("eval --models 'a={model}' --tasks mc:@mc-fields.jsonl --output @out"),
        "field 'query' is missing",
        "out",
    ),
    BadInput(
        "MC gold out of range",
        "evaluation",
        command("eval --models 'a={model}' --tasks mc:@mc-gold.jsonl --output @out"),
        "field 'gold' must be a 0-based index below 2, got 7",
        "out",
    ),
    BadInput(
        "MC file not JSON",
        "evaluation",
        command("eval --models 'a={model}' --tasks mc:@notes.txt --output @out"),
        "notes.txt line 1: not valid JSON",
        "out",
    ),
    BadInput(
        "two models of one name",
        "evaluation",
        command("eval --models 'a={model},a=@weightless' --tasks mc:@mc-ok.jsonl --output @out"),
        "model name 'a' is given twice",
        "out",
    ),
]


def listing(path: Path) -> list[tuple[str, int]] | None:
    """What a path holds (names and sizes), or None when it does not exist."""
    if not path.exists():
        return None
    if path.is_file():
        return [(path.name, path.stat().st_size)]
    return sorted((str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*"))


@pytest.fixture(scope="module")
def workspace(tiny_llama_path, tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bad-inputs"), tiny_llama_path)


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 40 and len({case.name for case in CASES}) == len(CASES)
    page = (Path(__file__).parents[1] / "docs" / "bad-input.md").read_text()
    for category in {case.category for case in CASES}:
        assert f"**{category}**" in page, f"docs/bad-input.md lacks the category {category}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_input_is_one_line_and_writes_nothing(case, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace.root)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    output = workspace.root / case.output if case.output else None
    before = listing(output) if output else None
    try:
        code = main(case.argv(workspace))
    except SystemExit as exit:  # argument errors leave through the parser
        code = exit.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, f"expected one line, got:\n{captured.err}"
    assert re.match(r"sdd-data \w+: error: ", lines[0]), lines[0]
    assert re.search(case.error, lines[0]), lines[0]
    if output is not None:
        assert listing(output) == before, f"{case.output} changed"
