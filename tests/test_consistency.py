"""The consistency checks and the keep / fall back / drop decision."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from data_samples import ALPACA, DOLLY, GSM8K_TRAIN, MATH, OPENMATHINSTRUCT

from sdd_data.data.records import DECISIONS, gsm8k_reference
from sdd_data.distill.consistency import (
    CHECKS,
    FAILURE_DECISIONS,
    SDFT_BANNED_PHRASES,
    TASK_CHECKS,
    Decision,
    FilterConfig,
    Verdict,
    decide,
    reference_answer,
    repeated_line_count,
    repeated_passage_count,
    repeated_phrase_count,
)
from sdd_data.errors import SddError

CONFIG = FilterConfig()

GSM8K_RESPONSE = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
GOOD_REWRITE = (
    "In April Natalia sold 48 clips. In May she sold half as many, which is 48 / 2 = 24 clips.\n"
    "Altogether she sold 48 + 24 = 72 clips.\nThe answer is 72."
)

TEN_STEPS = (
    "\n".join(
        f"Step {n}: add {n} apples to the basket, so the basket now holds {n * (n + 1) // 2} apples."
        for n in range(1, 11)
    )
    + "\nThe answer is 55."
)


def math_row(response: str = GSM8K_RESPONSE, reference: str | None = "72") -> dict:
    return {"task": "math", "response": response, "reference_answer": reference}


def run(rewrite: str, row: dict | None = None, finish_reason: str = "stop", config: FilterConfig = CONFIG) -> Decision:
    return decide(row if row is not None else math_row(), rewrite, finish_reason, config)


# --- registry and config ------------------------------------------------------------------


def test_checks_run_in_the_documented_order():
    assert list(CHECKS) == ["empty", "truncated", "looping", "template_leak", "task", "similarity"]
    assert set(TASK_CHECKS) == {"math", "mc", "code"}


def test_decisions_are_the_schema_decisions():
    assert set(FAILURE_DECISIONS.values()) | {"rewrite"} == set(DECISIONS)


def test_unknown_failure_policy_is_a_user_error():
    with pytest.raises(SddError, match="on_failure"):
        FilterConfig(on_failure="keep")


def test_every_config_field_has_a_docstring():
    source = inspect.getsource(FilterConfig)
    body = ast.parse(source).body[0].body
    documented = {
        statement.target.id
        for statement, following in zip(body, body[1:])
        if isinstance(statement, ast.AnnAssign)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
    }
    assert documented == {field.name for field in dataclasses.fields(FilterConfig)}


def test_banned_phrases_default_to_sdft_and_are_lowercased():
    assert FilterConfig().banned_phrases == SDFT_BANNED_PHRASES
    config = FilterConfig(banned_phrases=["As An AI"], banned_prefixes=["Sure"])
    assert config.banned_phrases == ("as an ai",)
    assert config.banned_prefixes == ("sure",)


def test_results_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Verdict(True, "ok").passed = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Decision("rewrite", "ok").decision = "dropped"  # type: ignore[misc]


# --- keep ---------------------------------------------------------------------------------


def test_consistent_math_rewrite_is_kept_with_its_answer():
    assert run(GOOD_REWRITE) == Decision("rewrite", "ok", "72")


def test_free_rewrite_is_kept_without_an_answer():
    row = {"task": "free", "response": "Paris is the capital of France.", "reference_answer": None}
    assert run("The capital of France is Paris.", row) == Decision("rewrite", "ok", None)


# --- empty and truncated ------------------------------------------------------------------


@pytest.mark.parametrize("rewrite", ["", "   ", "\n\t\n"])
def test_empty_rewrite(rewrite):
    assert run(rewrite) == Decision("original", "empty", None)


def test_truncated_rewrite():
    assert run(GOOD_REWRITE, finish_reason="length").reason == "truncated"
    assert run(GOOD_REWRITE, finish_reason="stop").reason == "ok"


# --- looping ------------------------------------------------------------------------------


def test_repeated_line_loop():
    rewrite = "Let me compute.\n" + "She sold 24 clips in May.\n" * 6 + "The answer is 72."
    assert run(rewrite).reason == "looping"


def test_phrase_loop_running_to_the_end():
    rewrite = "Natalia sold 72 clips " + "and then she sold more clips " * 20
    assert run(rewrite).reason == "looping"


def test_single_character_loop():
    assert run("The answer is 72" + "!" * 400).reason == "looping"


def test_loop_in_the_middle_that_the_model_broke_out_of():
    rewrite = (
        "First, 48 / 2 = 24. "
        + "So she sold 24 clips in May and 48 clips in April. " * 8
        + "Adding gives 48 + 24 = 72 clips, which is the number asked for. The answer is 72."
    )
    assert run(rewrite).reason == "looping"


@pytest.mark.parametrize(
    "rewrite",
    [
        "Sure! It is very " + "very " * 12 + "good. The answer is 72.",
        "Here: " + "the the " * 10 + "answer is 72, told in a long line the passage probes never land on at all.",
        "The answer is 72. " + "Yes, yes. " * 9,
        "I think I think " * 5 + "that the answer is 72.",
    ],
)
def test_a_short_word_or_phrase_said_again_and_again_on_one_line_is_a_loop(rewrite):
    assert run(rewrite).reason == "looping"


def test_a_few_repeated_words_are_not_a_loop():
    assert repeated_phrase_count("It is very very good, and I am fine. I am fine.") == 2
    assert run("Very very good: 48 + 24 = 72. The answer is 72.").reason == "ok"
    counting = math_row(response="1 2 3 4 5 6 7 8 9 10 #### 10", reference="10")
    assert run("Counting: 1 2 3 4 5 6 7 8 9 10. The answer is 10.", counting).reason == "ok"


@pytest.mark.parametrize("answer", ["1e400", "1e9999999999", "9" * 100, "-1e-400"])
def test_huge_numbers_in_a_rewrite_are_a_mismatch_not_a_crash(answer):
    decision = run(f"48 + 24 = 72, or so I thought. The answer is {answer}.")
    assert decision == Decision("original", "answer_mismatch", answer)


def test_ten_step_numbered_list_is_not_a_loop():
    row = math_row(response=TEN_STEPS, reference="55")
    assert run(TEN_STEPS, row) == Decision("rewrite", "ok", "55")
    assert repeated_line_count(TEN_STEPS, 12, 4) < 4
    assert repeated_passage_count(TEN_STEPS, 40) == 1


def test_markdown_list_with_blank_lines_and_short_lines_is_not_a_loop():
    rewrite = "\n\n".join(f"- **Item {n}**\n  - detail about item number {n}\n  ---" for n in range(12))
    row = {"task": "free", "response": "A list.", "reference_answer": None}
    assert run(rewrite, row).reason == "ok"


def test_repetition_as_frequent_as_in_the_source_is_not_a_loop():
    chorus = "Sing along with me tonight\nUnder the silver light\n"
    song = "\n".join(f"Verse {n}: a different line about day number {n}\n{chorus}" for n in range(5))
    row = {"task": "free", "response": song, "reference_answer": None}
    assert run(song, row).reason == "ok"
    longer = song + chorus * 3
    assert run(longer, row).reason == "looping"


def test_templated_steps_with_different_numbers_are_not_a_loop():
    steps = "\n".join(
        f"On the following day, she walks double the distance of the previous day's total of {2**n} miles, "
        f"meaning she walks {2**n}*2={2 ** (n + 1)} miles that day."
        for n in range(8)
    )
    assert repeated_passage_count(steps, 40) == 1
    assert run(steps + "\n#### 256", math_row(reference="256")).reason == "ok"


def test_loop_detection_can_be_turned_off():
    rewrite = "She sold 24 clips in May.\n" * 6 + "The answer is 72."
    config = FilterConfig(loop_line_repeats=0, loop_passage_repeats=0)
    assert run(rewrite, config=config).reason == "ok"


def test_short_repeated_lines_do_not_count():
    code_like = "def f(x):\n    if x:\n        pass\n" * 5
    assert repeated_line_count(code_like, 12, 4) == 0


# --- template leak ------------------------------------------------------------------------


@pytest.mark.parametrize("phrase", SDFT_BANNED_PHRASES)
def test_banned_phrases_leak(phrase):
    rewrite = f"Following the {phrase.upper()}, 48 + 24 = 72. The answer is 72."
    assert run(rewrite).reason == "template_leak"


def test_reference_answer_leak():
    rewrite = "As the reference answer says, she sold 72 clips. The answer is 72."
    assert run(rewrite) == Decision("original", "template_leak", None)


def test_echoed_template_sections_leak():
    assert run("### Instruction:\nNatalia sold clips.\n48 + 24 = 72. The answer is 72.").reason == "template_leak"
    assert run("48 + 24 = 72.\n\n### Response:\nThe answer is 72.").reason == "template_leak"


def test_your_turn_only_leaks_at_the_start():
    assert run("  Your turn! 48 + 24 = 72. The answer is 72.").reason == "template_leak"
    assert run("She took her turn: 48 + 24 = 72. The answer is 72.").reason == "ok"


def test_custom_banned_phrase():
    config = FilterConfig(banned_phrases=("as an ai",))
    assert run("As an AI, I find 72. The answer is 72.", config=config).reason == "template_leak"
    assert run("The reference answer is right: 72.", config=config).reason == "ok"


# --- math answers -------------------------------------------------------------------------


def test_answer_mismatch_reports_the_rewrite_answer():
    rewrite = "48 + 24 = 73 clips in total. The answer is 73."
    assert run(rewrite) == Decision("original", "answer_mismatch", "73")


def test_no_answer_in_the_rewrite():
    assert run("She sold many clips in both months.").reason == "no_answer"


def test_reference_answer_falls_back_to_the_response():
    for empty in (None, "", "  "):
        assert run(GOOD_REWRITE, math_row(reference=empty)).reason == "ok"
        assert run("The answer is 71.", math_row(reference=empty)).reason == "answer_mismatch"


def test_given_reference_answer_wins_over_the_response():
    row = math_row(response="Some reasoning ending in 99.", reference="72")
    assert reference_answer(row) == "72"
    assert run(GOOD_REWRITE, row).reason == "ok"


def test_no_reference_answer_anywhere():
    row = math_row(response="A solution with no final number.", reference=None)
    assert run(GOOD_REWRITE, row) == Decision("original", "no_reference_answer", None)


@pytest.mark.parametrize(
    "rewrite, reference",
    [
        ("Each costs $2.50, so the total is $5.00. The answer is $5.", "5"),
        ("In total there are 1,000 marbles.\n#### 1,000", "1000"),
        ("She loses 5 points, so her score changes by -5.", "-5"),
        ("Half of it: \\boxed{\\frac{1}{2}}", "0.5"),
        ("The discount is 50%.", "50"),
        ("So the price is 2.50 dollars.", "2.5"),
        ("The answer is $18.", "18"),
    ],
)
def test_math_answer_forms_match(rewrite, reference):
    assert run(rewrite, math_row(reference=reference)).reason == "ok"


# --- multiple choice ----------------------------------------------------------------------


def mc_row(reference: str | None = "C", response: str = "The answer is (C).") -> dict:
    return {"task": "mc", "response": response, "reference_answer": reference}


@pytest.mark.parametrize("rewrite", ["Paris is in France, so the answer is (C).", "answer: C", "(C)", "Reasoning.\nC"])
def test_mc_match(rewrite):
    assert run(rewrite, mc_row()) == Decision("rewrite", "ok", "C")


def test_mc_mismatch_and_missing():
    assert run("The answer is (B).", mc_row()).reason == "answer_mismatch"
    assert run("I am not sure which one.", mc_row()).reason == "no_answer"


def test_mc_reference_from_response():
    assert run("Answer: C", mc_row(reference=None)).reason == "ok"
    assert run("Answer: C", mc_row(reference=None, response="No letter here.")).reason == "no_reference_answer"


# --- code ---------------------------------------------------------------------------------

PY_RESPONSE = "Here is the function:\n```python\ndef add(a, b):\n    return a + b\n```\n"


def code_row(response: str = PY_RESPONSE) -> dict:
    return {"task": "code", "response": response, "reference_answer": None}


def test_code_rewrite_with_valid_python_is_kept():
    rewrite = 'I implemented it:\n```python\ndef add(a, b):\n    """Sum."""\n    return a + b\n```'
    assert run(rewrite, code_row()) == Decision("rewrite", "ok", None)


def test_code_rewrite_without_a_block():
    assert run("Just add a and b with the plus operator.", code_row()).reason == "no_code"
    assert run("```python\ndef add(a, b):\n    return a + b\n", code_row()).reason == "no_code"  # unclosed


def test_code_rewrite_with_a_python_syntax_error():
    rewrite = "```python\ndef add(a, b)\n    return a + b\n```"
    assert run(rewrite, code_row()).reason == "code_syntax_error"


def test_only_python_blocks_are_parsed():
    rewrite = "```bash\nfor f in *; do echo $f; done\n```\n```py\nx = 1\n```"
    assert run(rewrite, code_row()).reason == "ok"


def test_code_without_a_block_in_the_source_needs_none():
    assert run("Use a + b.", code_row(response="Use the + operator.")).reason == "ok"


# --- free-text similarity -----------------------------------------------------------------

FREE_ROW = {"task": "free", "response": "The Eiffel Tower is in Paris, France.", "reference_answer": None}


def test_similarity_is_off_by_default():
    assert run("Bananas are yellow fruit.", FREE_ROW).reason == "ok"


def test_low_similarity_when_enabled():
    config = FilterConfig(min_similarity=60)
    assert run("Bananas are yellow fruit.", FREE_ROW, config=config).reason == "low_similarity"
    assert run("The Eiffel Tower stands in Paris, France.", FREE_ROW, config=config).reason == "ok"


def test_similarity_applies_to_free_rows_only():
    config = FilterConfig(min_similarity=99)
    assert run(GOOD_REWRITE, config=config).reason == "ok"


# --- drop policy --------------------------------------------------------------------------


def test_drop_policy_drops_failed_rows_and_keeps_passing_ones():
    config = FilterConfig(on_failure="drop")
    assert run("The answer is 71.", config=config) == Decision("dropped", "answer_mismatch", "71")
    assert run(GOOD_REWRITE, finish_reason="length", config=config) == Decision("dropped", "truncated", None)
    assert run(GOOD_REWRITE, config=config) == Decision("rewrite", "ok", "72")


# --- real data ----------------------------------------------------------------------------


def sample_rows(path: Path) -> list[dict]:
    """The rows of a JSON or JSON-lines data sample from tests/data."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines()]


def gsm8k_rows() -> list[dict]:
    return sample_rows(GSM8K_TRAIN)


def keep_rate(pairs: list[tuple[dict, str]]) -> tuple[float, list[tuple[Decision, str]]]:
    failures = []
    for row, rewrite in pairs:
        decision = decide(row, rewrite, "stop", CONFIG)
        if decision.decision != "rewrite":
            failures.append((decision, rewrite[-300:]))
    return 1 - len(failures) / len(pairs), failures


def test_every_gsm8k_solution_is_kept_as_its_own_rewrite():
    pairs = [(math_row(item["answer"], gsm8k_reference(item["answer"])), item["answer"]) for item in gsm8k_rows()]
    rate, failures = keep_rate(pairs)
    assert rate >= 0.999, failures[:10]


def test_gsm8k_solutions_in_sdft_form_match_without_a_reference_column():
    pairs = []
    for item in gsm8k_rows():
        body, _, answer = item["answer"].rpartition("####")
        pairs.append((math_row(item["answer"], None), f"{body.strip()}\nThe answer is {answer.strip()}."))
    rate, failures = keep_rate(pairs)
    assert rate >= 0.999, failures[:10]


def test_gsm8k_solutions_without_a_marker_match_on_the_last_number():
    """A weak fallback: about 3% of solutions end on a number that is not the answer."""
    pairs = [
        (math_row(item["answer"], gsm8k_reference(item["answer"])), item["answer"].rpartition("####")[0])
        for item in gsm8k_rows()
    ]
    rate, failures = keep_rate(pairs)
    assert rate >= 0.95, failures[:10]


def test_loop_detectors_never_fire_on_gsm8k_solutions_alone():
    """The detectors themselves, without the source-repeats-too allowance."""
    config = FilterConfig()
    for item in gsm8k_rows():
        text = item["answer"]
        assert (
            repeated_line_count(text, config.loop_min_line_chars, config.loop_line_repeats) < config.loop_line_repeats
        ), text
        assert repeated_passage_count(text, config.loop_passage_chars) < config.loop_passage_repeats, text


@pytest.mark.parametrize(
    "path, response_key, answer_key",
    [(OPENMATHINSTRUCT, "generated_solution", "expected_answer"), (MATH, "chain_of_thought", "answer")],
    ids=["openmathinstruct2", "math"],
)
def test_boxed_math_solutions_match_their_expected_answers(path, response_key, answer_key):
    """Base-n subscripts, factorials and unevaluated products are the known misses."""
    pairs = [(math_row(item[response_key], item[answer_key]), item[response_key]) for item in sample_rows(path)]
    rate, failures = keep_rate(pairs)
    assert rate >= 0.98, failures[:10]


@pytest.mark.parametrize("path", [ALPACA, DOLLY], ids=["alpaca", "dolly"])
def test_free_text_responses_are_kept_as_their_own_rewrites(path):
    """Only SDFT's ban list removes any (a letter that says "your response")."""
    pairs = [
        ({"task": "free", "response": item["output"], "reference_answer": None}, item["output"])
        for item in sample_rows(path)
    ]
    rate, failures = keep_rate(pairs)
    assert rate >= 0.995, failures[:10]
    assert all(decision.reason == "template_leak" for decision, _ in failures)
