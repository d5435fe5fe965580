"""Properties of the answer extractors and the comparison, over generated text (hypothesis).

Any text returns without error, and a number written in any of its usual forms is read as the same value
by every extractor that finds it.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdd_data.data.answers import EXTRACTORS, TASK_EXTRACTORS, answers_match, extract_answer, parse_number
from sdd_data.distill.consistency import FilterConfig, decide

# Generated examples run without a per-example deadline (the machine may be busy); pytest-timeout bounds each test.
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like answers: digits, separators, LaTeX, option letters and answer phrases, mixed with any text.
ANSWER_PIECES = st.sampled_from(
    ["The answer is", "####", "\\boxed{", "}", "{", "\\frac", "1e", "e-", "9" * 30, ",000", ".", "$", "%", "(C)",
     "option", "Answer:", "\n", " ", "/", "-", "^", "_", "\\sqrt", "\\text{", "1", "0", "7"]
)  # fmt: skip
ANSWER_LIKE_TEXT = st.lists(st.one_of(ANSWER_PIECES, st.text(max_size=12)), max_size=40).map("".join)


@PROPERTIES
@given(text=st.one_of(st.text(max_size=400), ANSWER_LIKE_TEXT))
@example(text="The answer is 1e400")
@example(text="The answer is 1e9999999999")
@example(text="\\boxed{" * 200)
@example(text="9" * 5000)
@pytest.mark.timeout(300)
def test_any_text_gives_an_answer_or_none_and_never_an_error(text):
    for name in EXTRACTORS.names():
        found = EXTRACTORS.get(name)(text)
        assert found is None or isinstance(found, str)
    for task in TASK_EXTRACTORS:
        answer = extract_answer(text, task)
        if answer is not None:
            assert isinstance(answers_match(answer, text), bool)
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)


@PROPERTIES
@given(
    text=st.one_of(st.text(max_size=300), ANSWER_LIKE_TEXT), reference=st.one_of(st.text(max_size=20), ANSWER_LIKE_TEXT)
)
@pytest.mark.timeout(300)
def test_the_filter_decides_any_rewrite_without_an_error(text, reference):
    row = {"id": "r", "task": "math", "instruction": "q", "input": "", "response": "#### 3",
           "reference_answer": reference}  # fmt: skip
    decision = decide(row, text, "stop", FilterConfig())
    assert decision.decision in ("rewrite", "original", "dropped") and decision.reason


def spellings(mantissa: int, exponent: int) -> list[str]:
    """One whole number written the ways people write it: plain, grouped, decimal, currency, scientific."""
    value = mantissa * 10**exponent
    return [str(value), f"{value:,}", f"{value}.0", f"${value:,}", f"${value}.00", f"{mantissa}e{exponent}",
            f"{mantissa}E+{exponent}", f"{mantissa}.0e{exponent}"]  # fmt: skip


@PROPERTIES
@given(mantissa=st.integers(min_value=0, max_value=10**7), exponent=st.integers(min_value=0, max_value=6))
@example(mantissa=1, exponent=3)
@example(mantissa=1, exponent=4)  # 10000 and 10001 once agreed within the relative tolerance
def test_a_number_in_any_usual_spelling_has_one_value(mantissa, exponent):
    forms = spellings(mantissa, exponent)
    assert {parse_number(form) for form in forms} == {Fraction(mantissa * 10**exponent)}
    for form in forms:
        assert answers_match(form, forms[0]) and answers_match(forms[0], form)
        assert not answers_match(form, str(mantissa * 10**exponent + 1))


@PROPERTIES
@given(
    mantissa=st.integers(min_value=1, max_value=10**6),
    exponent=st.integers(min_value=0, max_value=5),
    form=st.integers(min_value=0, max_value=7),
    sentence=st.sampled_from(
        ["The answer is {}.", "So she pays {} in total.", "#### {}", "\\boxed{{{}}}", "Answer: {}", "That gives {}"]
    ),  # fmt: skip
)
@example(mantissa=1, exponent=0, form=6, sentence="So she pays {} in total.")  # "1E+0" was read as 0
def test_every_math_extractor_reads_the_same_number_from_a_sentence(mantissa, exponent, form, sentence):
    written = spellings(mantissa, exponent)[form]
    answer = extract_answer(sentence.format(written), "math")
    assert answer is not None and parse_number(answer) == mantissa * 10**exponent
