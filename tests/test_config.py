"""Configs as data: flags and YAML keys generated from the dataclasses, with type checks."""

import pytest

from sdd_data.cli import build_parser, main
from sdd_data.config import build_config, config_from_sources, config_to_flat_dict, field_docs, leaf_fields
from sdd_data.distill.stage import DistillConfig
from sdd_data.errors import SddError


def parse(argv):
    args = build_parser().parse_args(["distill", *argv])
    return args, {k: v for k, v in vars(args).items() if k not in ("stage", "run", "config")}


def test_every_leaf_field_is_a_documented_flag():
    leaves = leaf_fields(DistillConfig)
    assert {"data", "max_new_tokens", "batch_size", "on_failure", "teacher", "shard_size"} <= set(leaves)
    undocumented = [name for name, (_, _, doc) in leaves.items() if not doc]
    assert undocumented == []
    help_text = build_parser()._subparsers._group_actions[0].choices["distill"].format_help()
    assert "--max-new-tokens" in help_text and "--no-overwrite" in help_text


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "distill.yaml"
    path.write_text("data: example\nmax_new_tokens: 64\ntemperature: 0.7\nengine: vllm\n")
    args, values = parse(["--config", str(path), "--max-new-tokens", "32", "--columns", "instruction=q,response=a"])
    config = config_from_sources(DistillConfig, args.config, values)
    assert config.decoding.max_new_tokens == 32
    assert config.decoding.temperature == 0.7
    assert config.engine == "vllm"
    assert config.source.columns == {"instruction": "q", "response": "a"}
    assert config.decoding.top_p == 1.0


def test_flat_dict_round_trips():
    config = build_config(DistillConfig, {"data": "x.jsonl", "seed": 3, "overwrite": True})
    assert build_config(DistillConfig, config_to_flat_dict(config)) == config


def test_wrong_types_unknown_and_missing_options_are_clear():
    with pytest.raises(SddError, match="option shard_size must be an integer, got 'many'"):
        build_config(DistillConfig, {"data": "x", "shard_size": "many"})
    with pytest.raises(SddError, match="unknown option.*max_tokens"):
        build_config(DistillConfig, {"data": "x", "max_tokens": 3})
    with pytest.raises(SddError, match="missing required option.*--data"):
        build_config(DistillConfig, {})


def test_cli_prints_one_line_errors(capsys, tmp_path):
    assert main(["distill", "--data", str(tmp_path / "missing.jsonl")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sdd-data distill: error: data path") and error.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    assert main(["distill", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_docs_come_from_the_literal_under_each_field():
    assert "Rows per shard" in field_docs(DistillConfig)["shard_size"]


def test_every_stage_help_renders():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in subcommands.items():
        assert parser.format_help().startswith("usage: "), name


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["distill", "--columns", "{bad"], "argument --columns: expected key=value[,key=value...] or a JSON object"),
        (["distill", "--columns", "a=["], "argument --columns: expected key=value"),
        (["distill", "--columns", "[1, 2]"], "argument --columns: expected key=value"),
        (["distill", "--shard-size", "many"], "argument --shard-size: invalid int value: 'many'"),
        (["distil"], "argument stage: invalid choice: 'distil'"),
    ],
)
def test_malformed_arguments_are_one_line_errors(arguments, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    error = capsys.readouterr().err
    assert exited.value.code == 2 and error.count("\n") == 1 and expected in error and "usage:" not in error
