"""Eval stage: MC log-likelihood scoring, GSM8K scoring, retention report, JSON/PNG output and errors."""

from __future__ import annotations

import json
import shutil

import pytest
from data_samples import write_jsonl

from sdd_data.errors import SddError
from sdd_data.evaluate import loglikelihood
from sdd_data.evaluate.gsm8k import Gsm8kTask, score_gsm8k_answer
from sdd_data.evaluate.lm_eval_tasks import LEADERBOARD_V1, lm_eval_arguments
from sdd_data.evaluate.loglikelihood import (
    PackedRow,
    continuation_logprobs,
    pack_pairs,
    row_layout,
    token_budget_batches,
)
from sdd_data.evaluate.mc_scoring import (
    mc_accuracy,
    read_mc_items,
    split_pair,
)
from sdd_data.evaluate.multiple_choice import MultipleChoiceTask
from sdd_data.evaluate.report import build_report, format_table
from sdd_data.evaluate.stage import EvalConfig, choose_baseline, evaluate, parse_models
from sdd_data.evaluate.task_base import EvalModel, TaskResult, TaskSettings, choose_rows
from sdd_data.evaluate.tasks import parse_tasks

MC_ROWS = [
    {
        "query": "Question: What does the quick brown fox jump over?",
        "choices": ["the lazy dog", "a tall tree", "the moon"],
        "gold": 0,
    },
    {"query": "Question: What is 12 + 30?", "choices": ["42", "the answer is seven", "12"], "gold": 0},
    {
        "query": "Give three tips for staying healthy.",
        "choices": ["eat well", "sleep, and move every day", "fly"],
        "gold": 0,
    },
]
GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "A pen costs $2. How much do 5 pens cost?", "answer": "5 * 2 = 10\n#### 10"},
    {"question": "Sara had 20 stickers and gave away 5. How many are left?", "answer": "20 - 5 = 15\n#### 15"},
]


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_path):
    from sdd_data.engines.base import EngineConfig
    from sdd_data.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(tiny_llama_path, EngineConfig(dtype="float32", device="cpu", batch_size=4))
    return EvalModel("tiny", tiny_llama_path, engine)


def direct_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), one sequence at a time with no padding."""
    import torch

    context_ids, continuation_ids = split_pair(tokenizer, context, continuation)
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.inference_mode():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(log_probs[len(context_ids) - 1 + offset, token]) for offset, token in enumerate(continuation_ids))


# --- multiple-choice data ------------------------------------------------------------------------


def test_mc_rows_in_both_forms(tmp_path):
    query_form = read_mc_items(write_jsonl(tmp_path / "q.jsonl", MC_ROWS[:1]), delimiter="\nA: ")
    assert query_form[0].gold == 0
    assert query_form[0].pairs[1] == ("Question: What does the quick brown fox jump over?\nA: ", "a tall tree")
    partial = read_mc_items(
        write_jsonl(
            tmp_path / "w.jsonl",
            [
                {
                    "context_options": ["Sarah helped Maria so Sarah", "Sarah helped Maria so Maria"],
                    "continuation": "was thankful.",
                    "gold": 1,
                }
            ],
        )
    )
    assert partial[0].pairs == (
        ("Sarah helped Maria so Sarah", " was thankful."),
        ("Sarah helped Maria so Maria", " was thankful."),
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "q", "choices": ["a", "b"]}, "line 2: field 'gold' is missing"),
        ({"query": "q", "choices": ["a", "b"], "gold": 2}, "line 2: field 'gold' must be a 0-based index below 2"),
        ({"query": "q", "choices": "a b", "gold": 0}, "line 2: field 'choices' must be a list"),
        ({"query": "q", "choices": ["a", 3], "gold": 0}, "line 2: field 'choices' item 1 must be a non-empty string"),
        ({"question": "q", "choices": ["a", "b"], "gold": 0}, "line 2: field 'query' is missing"),
        ({"context_options": ["a", "b"], "gold": 0}, "line 2: field 'continuation' must be a non-empty string"),
    ],
)
def test_mc_rows_with_wrong_fields_name_line_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [MC_ROWS[0], row])
    with pytest.raises(SddError, match=message):
        read_mc_items(path)


def test_mc_file_errors(tmp_path):
    with pytest.raises(SddError, match="does not exist"):
        read_mc_items(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(SddError, match="has no rows"):
        read_mc_items(tmp_path / "empty.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"query": "q",\n')
    with pytest.raises(SddError, match="line 1: not valid JSON"):
        read_mc_items(tmp_path / "broken.jsonl")


# --- tokenisation at the context/continuation boundary ------------------------------------------


def test_split_pair_moves_trailing_space_and_keeps_natural_tokens(tiny_model):
    tokenizer = tiny_model.engine.tokenizer
    context_ids, continuation_ids = split_pair(tokenizer, "The quick brown fox jumps over the ", "lazy dog.")
    whole = tokenizer("The quick brown fox jumps over the lazy dog.", add_special_tokens=False)["input_ids"]
    assert context_ids + continuation_ids == whole
    assert tokenizer.decode(continuation_ids) == " lazy dog."


def test_split_pair_scores_a_token_that_straddles_the_boundary(tiny_model):
    tokenizer = tiny_model.engine.tokenizer
    whole_text = "The quick brown fox jumps"
    whole = tokenizer(whole_text, add_special_tokens=False)["input_ids"]
    fox = tokenizer(" fox", add_special_tokens=False)["input_ids"]
    assert len(fox) == 1  # the corpus makes " fox" one token: cutting inside it makes a straddling token
    context_ids, continuation_ids = split_pair(tokenizer, "The quick brown fo", "x jumps")
    assert context_ids + continuation_ids == whole
    assert continuation_ids[0] == fox[0]
    assert tokenizer.decode(continuation_ids).endswith("x jumps")


WINOGRANDE_PAIRS = [  # one continuation after two contexts: no shared context to pack
    ("The trophy did not fit in the suitcase because the trophy", " was too big."),
    ("The trophy did not fit in the suitcase because the suitcase", " was too big."),
]


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_packed_scores_equal_one_pair_at_a_time(tiny_model, batch_size):
    model, tokenizer = tiny_model.engine.model, tiny_model.engine.tokenizer
    pairs = [(row["query"] + "\nAnswer: ", choice) for row in MC_ROWS for choice in row["choices"]]
    pairs += WINOGRANDE_PAIRS + [pairs[0]]  # a repeated pair is scored twice, the same
    seen = []
    packed = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size, progress=seen.append)
    assert sum(seen) == len(pairs) and len(packed) == len(pairs)
    for (context, continuation), score in zip(pairs, packed):
        assert score == pytest.approx(direct_logprob(model, tokenizer, context, continuation), abs=1e-4)
        assert score < 0
    assert packed[-1] == packed[0]


def test_long_rows_get_batches_of_their_own_within_the_token_budget(tiny_model, monkeypatch):
    rows = [PackedRow(list(range(length)), []) for length in (900, 500, 120, 100, 90, 80, 10)]
    batches = token_budget_batches(rows, batch_size=3, max_tokens=400)
    assert [[row.length for row in batch] for batch in batches] == [[900], [500], [120, 100, 90], [80, 10]]
    for batch in batches:
        assert len(batch) == 1 or len(batch) * batch[0].length <= 400
    model, tokenizer = tiny_model.engine.model, tiny_model.engine.tokenizer
    pairs = [(row["query"] + "\nAnswer: ", choice) for row in MC_ROWS for choice in row["choices"]] + WINOGRANDE_PAIRS
    unbounded = continuation_logprobs(model, tokenizer, pairs, batch_size=64)
    monkeypatch.setattr(loglikelihood, "MAX_BATCH_TOKENS", 24)  # every row alone
    assert continuation_logprobs(model, tokenizer, pairs, batch_size=64) == pytest.approx(unbounded, abs=1e-4)


def test_choices_of_one_question_share_one_packed_row(tiny_model):
    tokenizer = tiny_model.engine.tokenizer
    pairs = [(MC_ROWS[0]["query"] + "\nAnswer: ", choice) for choice in MC_ROWS[0]["choices"]] + WINOGRANDE_PAIRS
    rows = pack_pairs([split_pair(tokenizer, context, continuation) for context, continuation in pairs])
    assert [len(row.continuations) for row in rows] == [3, 1, 1]
    tokens, positions, branches, targets = row_layout(rows[0])
    context = len(rows[0].context)
    assert tokens[:context] == rows[0].context and positions[:context] == list(range(context))
    for branch, (index, predicting, ids) in enumerate(targets):
        start = context + sum(len(other) for _, _, other in targets[:branch])
        assert index == branch and tokens[start : start + len(ids)] == ids
        assert positions[start : start + len(ids)] == list(range(context, context + len(ids)))
        assert branches[start : start + len(ids)] == [branch] * len(ids)
        assert predicting == [context - 1, *range(start, start + len(ids) - 1)]
    with pytest.raises(SddError, match="at least 1"):
        continuation_logprobs(tiny_model.engine.model, tokenizer, pairs, batch_size=0)


def test_mc_task_picks_the_most_likely_continuation(tiny_model, tmp_path):
    model, tokenizer = tiny_model.engine.model, tiny_model.engine.tokenizer
    rows = []
    for row in MC_ROWS:  # gold = the choice the model itself finds most likely, computed directly
        scores = [direct_logprob(model, tokenizer, row["query"] + "\nAnswer: ", choice) for choice in row["choices"]]
        rows.append({**row, "gold": max(range(len(scores)), key=scores.__getitem__)})
    rows.append({**rows[0], "gold": (rows[0]["gold"] + 1) % 3})  # one wrong gold
    task = MultipleChoiceTask(write_jsonl(tmp_path / "mc.jsonl", rows))
    settings = TaskSettings(limit=None, batch_size=3)
    task.prepare(settings)
    result = task.run(tiny_model, settings)
    assert result.metrics["acc"] == pytest.approx(3 / 4)
    assert result.rows == 4 and result.metric == "acc_norm" and 0 <= result.score <= 1


def test_mc_accuracy_normalises_by_continuation_characters():
    from sdd_data.evaluate.mc_scoring import MCItem

    item = MCItem((("Q:", "a"), ("Q:", "bbbbbbbbbb")), gold=1)
    scores = [-2.0, -5.0]  # the long choice is less likely in total, more likely per character
    assert mc_accuracy([item], scores) == {"acc": 0.0, "acc_norm": 1.0}
    spaced = MCItem((("Q: ", "a"), ("Q: ", "bbb")), gold=1)  # per character of the choice, not of " a" and " bbb"
    assert mc_accuracy([spaced], [-1.0, -2.5]) == {"acc": 0.0, "acc_norm": 1.0}


# --- GSM8K ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exact", "strict"),
    [
        ("3 + 4 = 7 apples.\n#### 7", True, True),
        ("He has 7 apples. The answer is 7.", True, True),
        ("3 + 4 makes 7", True, False),
        ("The answer is 8.", False, False),
        ("I do not know.", False, False),
    ],
)
def test_gsm8k_answer_scoring(text, exact, strict):
    verdict = score_gsm8k_answer(text, "7")
    assert (verdict["exact_match"], verdict["strict_match"]) == (exact, strict)


def test_gsm8k_thousands_separator_matches():
    assert score_gsm8k_answer("Total: $1,000.\n#### 1,000", "1000")["exact_match"]


def test_gsm8k_task_with_a_model(tiny_model, tmp_path):
    task = Gsm8kTask(write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS))
    settings = TaskSettings(limit=None, max_new_tokens=6)
    task.prepare(settings)
    assert [row["reference"] for row in task.rows] == ["7", "10", "15"]
    result = task.run(tiny_model, settings)
    assert result.rows == 3 and result.task == "gsm8k:gsm8k"
    assert result.score in (0.0, 1 / 3, 2 / 3, 1.0)
    assert result.metrics["truncated"] == 1.0  # 6 tokens never finish a random model's answer


def test_gsm8k_rows_without_reference_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "q?", "answer": "no final line"}])
    with pytest.raises(SddError, match="no reference answer"):
        Gsm8kTask(path).prepare(TaskSettings())


def test_row_subset_is_seeded_and_ordered():
    first = choose_rows(100, 10, seed=1)
    assert first == choose_rows(100, 10, seed=1) == sorted(first) and len(set(first)) == 10
    assert first != choose_rows(100, 10, seed=2)
    assert choose_rows(5, 10, seed=1) == choose_rows(5, None, seed=1) == [0, 1, 2, 3, 4]


# --- task lists and lm-eval ----------------------------------------------------------------------


def test_task_list_errors():
    with pytest.raises(SddError, match="unknown task 'arc'.*known tasks:.*gsm8k"):
        parse_tasks("arc")
    with pytest.raises(SddError, match="mc needs a file"):
        parse_tasks("mc")
    with pytest.raises(SddError, match="listed twice"):
        parse_tasks("gsm8k,gsm8k")
    with pytest.raises(SddError, match="shots must be a whole number"):
        parse_tasks("lm-eval:hellaswag:ten")


def test_task_files_of_one_name_in_different_folders_are_told_apart(tmp_path):
    item = json.dumps({"query": "Pick one.", "choices": ["a", "b"], "gold": 0}) + "\n"
    for folder in ("arc", "piqa"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test.jsonl").write_text(item)
    tasks = parse_tasks(f"mc:{tmp_path}/arc/test.jsonl,mc:{tmp_path}/piqa/test.jsonl")
    assert [task.label for task in tasks] == ["mc:arc/test", "mc:piqa/test"]
    with pytest.raises(SddError, match="mc:test listed twice"):
        parse_tasks(f"mc:{tmp_path}/arc/test.jsonl,mc:{tmp_path}/arc/test.jsonl")


def test_leaderboard_suite_and_lm_eval_arguments():
    tasks = parse_tasks("leaderboard-v1,lm-eval:piqa:3")
    assert [(task.task, task.shots, task.metric) for task in tasks[:6]] == [
        ("arc_challenge", 25, "acc_norm"),
        ("hellaswag", 10, "acc_norm"),
        ("truthfulqa_mc2", 0, "acc"),
        ("mmlu", 5, "acc"),
        ("winogrande", 5, "acc"),
        ("gsm8k", 5, "exact_match"),
    ]
    assert len(LEADERBOARD_V1) == 6 and tasks[6].label == "piqa:3" and tasks[6].metric_key is None
    settings = TaskSettings(limit=50, seed=3, batch_size=4, trust_remote_code=False)
    arguments = lm_eval_arguments(tasks[0], "/models/pruned", settings, "cpu", "float32")
    assert arguments["model"] == "hf" and arguments["tasks"] == ["arc_challenge"]
    assert arguments["model_args"] == {"pretrained": "/models/pruned", "dtype": "float32", "trust_remote_code": False}
    commas = lm_eval_arguments(tasks[0], "/models/a,trust_remote_code=True", settings, "cpu", "float32")
    assert commas["model_args"]["pretrained"] == "/models/a,trust_remote_code=True"
    assert commas["model_args"]["trust_remote_code"] is False
    assert (arguments["num_fewshot"], arguments["limit"], arguments["batch_size"]) == (25, 50, 4)
    assert arguments["fewshot_random_seed"] == 3 and arguments["device"] == "cpu"


def test_lm_eval_missing_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    task = parse_tasks("lm-eval:hellaswag:10")[0]
    with pytest.raises(SddError, match="pip install lm-eval"):
        task.prepare(TaskSettings())


# --- models, retention and the report ------------------------------------------------------------


def test_model_list_and_baseline():
    assert parse_models("original=smollm2, pruned=runs/p") == {"original": "smollm2", "pruned": "runs/p"}
    assert parse_models("smollm2") == {"smollm2": "smollm2"}
    assert choose_baseline({"pruned": "a", "original": "b"}, None) == "original"
    assert choose_baseline({"a": "x", "b": "y"}, None) == "a"
    with pytest.raises(SddError, match="no models"):
        parse_models(" , ")
    with pytest.raises(SddError, match="given twice"):
        parse_models("a=x,a=y")
    with pytest.raises(SddError, match="baseline 'c' is not one of the models"):
        choose_baseline({"a": "x"}, "c")


def test_retention_arithmetic_and_table():
    scores = {
        "task1": {"original": 0.5, "pruned": 0.25, "recovered": 0.45},
        "task2": {"original": 0.3, "pruned": 0.3, "recovered": 0.0},
    }
    results = {
        label: {name: TaskResult(label, "acc", score, 10) for name, score in by_model.items()}
        for label, by_model in scores.items()
    }
    models = {name: {"path": name} for name in ("original", "pruned", "recovered")}
    report = build_report(models, "original", results)
    for name in ("pruned", "recovered"):
        for label in scores:
            assert report["retention"][name][label] == pytest.approx(
                100 * scores[label][name] / scores[label]["original"]
            )
        mean = sum(scores[label][name] for label in scores) / 2
        assert report["retention"][name]["average"] == pytest.approx(100 * mean / 0.4)
    assert "original" not in report["retention"]
    table = format_table(report).splitlines()
    assert table[0].split() == [
        "task",
        "(metric)",
        "original",
        "pruned",
        "recovered",
        "pruned/original",
        "%",
        "recovered/original",
        "%",
    ]
    assert table[-1].split()[0] == "average" and len(table) == 5
    average_row = table[-1].split()
    assert float(average_row[2]) == pytest.approx(100 * report["average"]["pruned"], abs=0.05)
    assert float(average_row[4]) == pytest.approx(report["retention"]["pruned"]["average"], abs=0.05)


def test_evaluate_writes_json_and_png(tiny_llama_path, tmp_path, capsys):
    from sdd_data.prune import save_pruned_checkpoint

    pruned = str(save_pruned_checkpoint(tiny_llama_path, [1], tmp_path / "pruned"))
    config = EvalConfig(
        models=f"original={tiny_llama_path},pruned={pruned}",
        tasks=f"mc:{write_jsonl(tmp_path / 'mc.jsonl', MC_ROWS)},gsm8k:{write_jsonl(tmp_path / 'g.jsonl', GSM8K_ROWS)}",
        limit=2,
        max_new_tokens=4,
        output=str(tmp_path / "out"),
        speculative="original",
        speculative_limit=2,
        speculative_max_new_tokens=6,
    )
    report = evaluate(config)
    assert list(report["tasks"]) == ["mc:mc", "gsm8k:g"]
    assert all(task["rows"] == 2 for task in report["tasks"].values())
    original, pruned_scores = report["average"]["original"], report["average"]["pruned"]
    expected = 100 * pruned_scores / original if original else None
    assert report["retention"]["pruned"]["average"] == (pytest.approx(expected) if expected is not None else None)
    assert report["speculative"]["original"]["acceptance_rate"] == 1.0
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["average"] == report["average"] and written["config"]["limit"] == 2
    assert (tmp_path / "out" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "pruned/original %" in printed and "acceptance α = 100.0%" in printed
    assert not [path.name for path in (tmp_path / "out").iterdir() if path.name.startswith(".")]


def test_evaluate_checks_tasks_before_loading_models(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "choices": ["a", "b"], "gold": "a"}])
    config = EvalConfig(models="original=/nonexistent/model", tasks=f"mc:{bad}", output=str(tmp_path / "out"))
    with pytest.raises(SddError, match="line 1: field 'gold'"):
        evaluate(config)
    assert not (tmp_path / "out").exists()


def test_evaluate_model_errors(tiny_llama_path, tmp_path):
    mc = write_jsonl(tmp_path / "mc.jsonl", MC_ROWS)
    with pytest.raises(SddError, match=r"model pruned \(/nonexistent/model\).*does not exist"):
        evaluate(EvalConfig(models=f"original={tiny_llama_path},pruned=/nonexistent/model", tasks=f"mc:{mc}"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_path, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SddError, match="cannot load the model in .*broken: "):
        evaluate(EvalConfig(models=f"broken={broken}", tasks=f"mc:{mc}", output=str(tmp_path / "out")))
    with pytest.raises(SddError, match="no models"):
        evaluate(EvalConfig(models="", tasks=f"mc:{mc}"))


def test_config_maps_to_flags_with_docs():
    import argparse

    from sdd_data.config import add_config_arguments, config_from_sources, field_docs

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, EvalConfig)
    arguments = parser.parse_args(
        [
            "--models",
            "original=smollm2,pruned=runs/p",
            "--tasks",
            "gsm8k",
            "--limit",
            "20",
            "--speculative",
            "pruned",
            "--no-trust-remote-code",
        ]
    )
    config = config_from_sources(EvalConfig, None, vars(arguments))
    assert (config.models, config.limit, config.speculative, config.draft_tokens) == (
        "original=smollm2,pruned=runs/p",
        20,
        "pruned",
        5,
    )
    docs = field_docs(EvalConfig)
    assert all(docs.get(name) for name in EvalConfig.__dataclass_fields__)


def test_answer_nll_is_the_mean_per_token_negative_log_likelihood(tiny_model, tmp_path):
    from sdd_data.evaluate.nll import AnswerNllTask

    tokenizer = tiny_model.engine.tokenizer
    rows = [
        {"messages": [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "42."}]},
        {"prompt": "Name a fox.", "response": "The quick brown fox."},
    ]
    task = AnswerNllTask(write_jsonl(tmp_path / "answers.jsonl", rows))
    settings = TaskSettings(limit=None, batch_size=2)
    task.prepare(settings)
    result = task.run(tiny_model, settings)
    expected = []
    for turns in task.conversations:
        prompt = tokenizer.apply_chat_template(turns[:-1], tokenize=False, add_generation_prompt=True)
        tokens = len(split_pair(tokenizer, prompt, turns[-1]["content"])[1])
        expected.append(-direct_logprob(tiny_model.engine.model, tokenizer, prompt, turns[-1]["content"]) / tokens)
    assert result.item_scores == pytest.approx(expected, abs=1e-5) and not result.higher_is_better
    assert result.score == pytest.approx(sum(expected) / 2, abs=1e-5) and result.task == "nll:answers"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(SddError, match="bad.jsonl line 1: the conversation must end with a non-empty assistant"):
        AnswerNllTask(str(tmp_path / "bad.jsonl")).prepare(settings)


def test_lower_is_better_scores_stay_out_of_the_average_and_retention():
    results = {
        "mc": {name: TaskResult("mc", "acc_norm", score, 4, item_scores=[1.0, 0.0]) for name, score in
               (("original", 0.5), ("pruned", 0.25))},
        "nll": {name: TaskResult("nll", "nll", score, 2, higher_is_better=False) for name, score in
                (("original", 1.2), ("pruned", 2.4))},
    }  # fmt: skip
    report = build_report({"original": {}, "pruned": {}}, "original", results)
    assert report["average"] == {"original": 0.5, "pruned": 0.25}
    assert report["retention"]["pruned"] == {"mc": 50.0, "nll": None, "average": 50.0}
    assert report["tasks"]["mc"]["item_scores"]["pruned"] == [1.0, 0.0] and report["tasks"]["nll"]["item_scores"] == {}
    table = format_table(report)
    assert "nll (nll, lower is better)" in table and "2.400" in table


def test_lm_eval_scores_the_same_items_as_the_built_in_scorer(tiny_llama_path, tmp_path):
    """The offline lm-eval path (a task YAML through --include_path) agrees with mc: item by item."""
    mc = write_jsonl(tmp_path / "tiny_mc.jsonl", MC_ROWS * 3)
    output = tmp_path / "out"
    report = evaluate(
        EvalConfig(models=f"tiny={tiny_llama_path}", tasks=f"mc:{mc},lm-eval-mc:{mc}", limit=7, seed=1,
                   batch_size=4, dtype="float32", device="cpu", output=str(output))
    )  # fmt: skip
    ours, theirs = report["tasks"]["mc:tiny_mc"], report["tasks"]["lm-eval-mc:tiny_mc"]
    assert ours["rows"] == theirs["rows"] == 7 and theirs["metric"] == ours["metric"] == "acc_norm"
    assert ours["higher_is_better"] is True and len(ours["item_scores"]["tiny"]) == 7
    assert ours["item_scores"]["tiny"] == theirs["item_scores"]["tiny"]
    assert ours["metrics"]["tiny"]["acc"] == pytest.approx(theirs["metrics"]["tiny"]["acc"])
    assert ours["scores"]["tiny"] == pytest.approx(theirs["scores"]["tiny"])


def test_lm_eval_task_yaml_splits_the_delimiter_like_the_built_in_scorer(tmp_path):
    from sdd_data.evaluate.lm_eval_mc import task_yaml

    config = task_yaml("sdd_mc_x", tmp_path / "x.jsonl", "\nAnswer: ")
    assert config["doc_to_text"] == "{{query}}\nAnswer:" and config["target_delimiter"] == " "
    assert config["dataset_kwargs"]["data_files"]["test"] == str((tmp_path / "x.jsonl").resolve())
    assert task_yaml("t", tmp_path / "x.jsonl", " ")["doc_to_text"] == "{{query}}"
