"""Answer extraction, number parsing, LaTeX normalisation and answer comparison."""

from __future__ import annotations

from fractions import Fraction

import pytest

from sdd_data.data.answers import (
    EXTRACTORS,
    TASK_EXTRACTORS,
    answers_match,
    extract_answer,
    extract_answer_is,
    extract_boxed,
    extract_gsm8k,
    extract_last_number,
    extract_mc_letter,
    normalize_latex,
    parse_number,
)
from sdd_data.data.records import TASKS


def test_every_task_has_a_chain_of_registered_extractors():
    assert set(TASK_EXTRACTORS) == set(TASKS)
    for chain in TASK_EXTRACTORS.values():
        assert all(name in EXTRACTORS for name in chain)
    assert TASK_EXTRACTORS["math"] == ("gsm8k", "boxed", "answer_is", "last_number")
    assert TASK_EXTRACTORS["mc"] == ("mc_letter",)
    assert TASK_EXTRACTORS["code"] == TASK_EXTRACTORS["free"] == ()


# --- gsm8k --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72", "72"),
        ("Total is 1234.\n#### 1,234", "1,234"),
        ("#### -5", "-5"),
        ("####72", "72"),
        ("#### 3.50\n", "3.50"),
        ("#### 18.", "18"),
        ("#### 72 clips", "72"),
        ("#### $18", "$18"),
        ("##### 5", "5"),
        ("first #### 1\nthen #### 2", "2"),
    ],
)
def test_gsm8k_marker(text, expected):
    assert extract_gsm8k(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no marker here",
        "#### ",
        "####\n",
        "#### Step 1\nAdd 2 and 3 to get 5.\nThe answer is 5.",  # a markdown heading, not the marker
        "#### 72\n\nI hope this helps!",
    ],
)
def test_gsm8k_marker_missing_or_empty(text):
    assert extract_gsm8k(text) is None


# --- answer is ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So she earns 10 dollars. The answer is 10.", "10"),
        ("The answer is $18.", "$18"),
        ("the final answer is: 42", "42"),
        ("The final answer is: 42 apples.", "42"),
        ("The answer is 1,000 dollars.", "1,000"),
        ("Thus the answer is (B).", "B"),
        ("The answer is \\frac{1}{2}.", "\\frac{1}{2}"),
        ("The answer is **7**.", "7"),
        ("I think the answer is 3.\nWait, no. The answer is 4.", "4"),
        ("THE ANSWER IS 9", "9"),
        ("İstanbul had 3. The answer is 5.", "5"),  # a letter whose lower case is longer
        ("The answer is x = 5.", "5"),
        ("The answer is that she has 72 clips.", "72"),
        ("The answer is 48 + 24 = 72 clips.", "72"),
        ("The answer is (1, 2).", "(1, 2)"),
        ("The answer is x = \\frac{1}{2}.", "\\frac{1}{2}"),
        ("The answer is Paris.", "Paris"),
    ],
)
def test_answer_is(text, expected):
    assert extract_answer_is(text) == expected


@pytest.mark.parametrize(
    "text", ["No final statement here, 12 apples.", "The answer is", "The answer is .", "The answer isn't obvious."]
)
def test_answer_is_missing(text):
    assert extract_answer_is(text) is None


# --- boxed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So $x = \\boxed{5}$.", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("first \\boxed{1}, finally \\boxed{2}", "2"),
        ("\\fbox{7}", "7"),
        ("\\boxed{3} and \\fbox{4}", "4"),
        ("\\boxed{(1, 2)}", "(1, 2)"),
        ("$\\boxed 5$", "5"),
    ],
)
def test_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_boxed_skips_an_unclosed_last_box():
    assert extract_boxed("\\boxed{2} and then \\boxed{\\frac{1}{2}") == "2"


@pytest.mark.parametrize("text", ["no box", "\\boxed{", "\\boxed{}", "\\boxednothing"])
def test_boxed_missing(text):
    assert extract_boxed(text) is None


# --- last number --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("It is -5 degrees.", "-5"),
        ("She has 1,000 apples.", "1,000"),
        ("A loan of 1,000,000 dollars", "1,000,000"),
        ("It costs $5.00.", "$5.00"),
        ("About 50% of them.", "50%"),
        ("Use 3/4 of the cake.", "3/4"),
        ("Only .5 left", ".5"),
        ("2.50", "2.50"),
        ("He had 3 then 4 then 12.", "12"),
        ("3 4", "4"),  # spaces never join digits
        ("items 1,2,3", "3"),  # commas that are not thousands groups separate numbers
        ("10-5=5", "5"),
        ("x = 7.", "7"),
        ("<<48/2=24>>24 clips", "24"),
    ],
)
def test_last_number(text, expected):
    assert extract_last_number(text) == expected


def test_last_number_none_without_digits():
    assert extract_last_number("There is no number at all.") is None


def test_last_number_in_a_long_text():
    filler = "word " * 200
    assert extract_last_number("12 " + filler + "then 1,234,567 end") == "1,234,567"
    assert extract_last_number("the number 42 " + filler) == "42"
    assert extract_last_number("x" * 10 + " 9,876,543" + " y" * 126) == "9,876,543"
    # the word holding the last digit is not a number, so an earlier number is the answer
    assert extract_last_number("there are 7 of type x2") == "7"


# --- multiple choice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is (C).", "C"),
        ("so the answer is (c)", "C"),
        ("The correct answer is B because ...", "B"),
        ("Answer: D", "D"),
        ("**Answer:** (A)", "A"),
        ("(C)", "C"),
        ("Reasoning first.\nB", "B"),
        ("Reasoning first.\n(J).", "J"),
        ("The answer is option E.", "E"),
        ("D. Helium", "D"),
        ("(B) Mars, because of its iron oxide.", "B"),
        ("C) Carbon dioxide", "C"),
    ],
)
def test_mc_letter(text, expected):
    assert extract_mc_letter(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The answer is a bit unclear.",  # the article "a" is not an option
        "Option K is not one of A-J lines",
        "Nothing to see",
    ],
)
def test_mc_letter_missing(text):
    assert extract_mc_letter(text) is None


def test_mc_prefers_the_explicit_statement():
    assert extract_mc_letter("(A) first\n(B) second\nThe answer is (B).") == "B"


# --- chains -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Work: 2+2=4. The answer is 5.\n#### 4", "4"),  # gsm8k marker beats the rest
        ("The answer is 3. Indeed \\boxed{4}", "4"),  # boxed beats answer-is
        ("We get 12 then 13. The answer is 12.", "12"),  # answer-is beats the last number
        ("We get 12 then 13.", "13"),
        ("No numbers.", None),
        ("#### Step 1\n48 / 2 = 24\n#### Step 2\n48 + 24 = 72, so the answer is 72.", "72"),
    ],
)
def test_math_chain_priority(text, expected):
    assert extract_answer(text, "math") == expected


def test_code_free_and_unknown_tasks_extract_nothing():
    assert extract_answer("The answer is 5", "code") is None
    assert extract_answer("The answer is 5", "free") is None
    assert extract_answer("The answer is 5", "no-such-task") is None


# --- parse_number -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-3", Fraction(-3)),
        ("+3", Fraction(3)),
        ("1,000", Fraction(1000)),
        ("-1,234.5", Fraction(-2469, 2)),
        ("$5.00", Fraction(5)),
        ("\\$5.00", Fraction(5)),
        ("50%", Fraction(50)),
        ("50\\%", Fraction(50)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("2.50", Fraction(5, 2)),
        ("3/4", Fraction(3, 4)),
        ("\\frac{1}{2}", Fraction(1, 2)),
        ("\\dfrac{3}{4}", Fraction(3, 4)),
        ("\\tfrac12", Fraction(1, 2)),
        ("\\dfrac12", Fraction(1, 2)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("\\frac{-1}{2}", Fraction(-1, 2)),
        ("$\\frac{1}{2}$", Fraction(1, 2)),
        ("1e3", Fraction(1000)),
        ("1{,}000", Fraction(1000)),
        ("1\\,000", Fraction(1000)),
        ("\\text{5}", Fraction(5)),
        ("18.", Fraction(18)),
        (" 7 ", Fraction(7)),
        ("90^\\circ", Fraction(90)),
        ("7 / 12", Fraction(7, 12)),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "3 4", "1/0", "\\frac{1}{0}", "1,2", "x+1", "1_000", "nan", "inf", "5 dollars"]
)
def test_parse_number_rejects(text):
    assert parse_number(text) is None


# --- normalize_latex ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$x + 1$", "x+1"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}"),
        ("\\tfrac{a}{b}", "\\frac{a}{b}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("90^\\circ", "90"),
        ("90^{\\circ}", "90"),
        ("\\text{(A)}", "(A)"),
        ("\\mathrm{cm}", "cm"),
        ("\\text{\\textbf{yes}}", "yes"),
        ("x\\!+\\,y", "x+y"),
        ("y = 2x.", "y=2x"),
        ("\\(\\pi\\)", "\\pi"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ],
)
def test_normalize_latex(text, expected):
    assert normalize_latex(text) == expected


# --- answers_match ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predicted, reference",
    [
        ("2.50", "2.5"),
        ("$5.00", "5"),
        ("1,000", "1000"),
        ("\\frac{1}{2}", "0.5"),
        ("50%", "50"),
        ("18", "18.0"),
        ("0.333333", "1/3"),
        ("-7", "-7"),
        ("c", "C"),
        ("(B)", "B"),
        ("\\left(1, 2\\right)", "(1,2)"),
        ("\\dfrac{\\pi}{2}", "\\frac{\\pi}{2}"),
        ("Paris", "Paris"),
    ],
)
def test_answers_match(predicted, reference):
    assert answers_match(predicted, reference)


@pytest.mark.parametrize(
    "predicted, reference",
    [
        ("7", "-7"),
        ("2.51", "2.5"),
        ("1,001", "1000"),
        ("B", "C"),
        ("B", "Paris"),
        ("x+1", "x-1"),
        ("5", "five"),
    ],
)
def test_answers_do_not_match(predicted, reference):
    assert not answers_match(predicted, reference)


def test_tolerances_are_adjustable():
    assert not answers_match("100.5", "100")
    assert answers_match("100.5", "100", rel_tol=0.01)
    assert answers_match("0.0000001", "0")
    assert not answers_match("0.001", "0")
    assert answers_match("0.001", "0", abs_tol=0.01)


def test_end_to_end_boxed_fraction_equals_decimal():
    assert answers_match(extract_answer("so we get \\boxed{\\frac{1}{2}}.", "math"), "0.5")


# --- bounded parsing and optional LaTeX braces --------------------------------------------------


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        ("1e400", "1e400", True),  # exact values too large for a float compare without overflow
        ("1e400", "5", False),
        ("1e9999999999", "5", False),  # never built: the exponent is beyond the parser's bound
        ("9" * 5000, "9" * 5000, True),  # too long to parse, equal as text
        ("1,000", "1e3", True),
        ("$1,000", "1000.0", True),
    ],
)
def test_huge_numbers_compare_without_error(predicted, reference, expected):
    assert answers_match(predicted, reference) is expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("x^{2}", "x^2"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\frac1x", "\\frac{1}{x}"),
        ("\\frac ab", "\\frac{a}{b}"),
        ("2\\sqrt3", "2\\sqrt{3}"),
        ("x_{1}+x_2", "x_1+x_{2}"),
    ],
)
def test_latex_answers_that_differ_only_in_optional_braces_match(first, second):
    assert answers_match(first, second) and answers_match(second, first)


def test_optional_braces_do_not_hide_a_different_answer():
    assert not answers_match("x^2", "x^3") and not answers_match("\\frac12", "\\frac{1}{3}")
    assert normalize_latex("x^23") == normalize_latex("x^{2}3") != normalize_latex("x^{23}")


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The correct option is (C) because metals conduct.", "C"),
        ("I would pick option B.", "B"),
        ("Option A is wrong. Option C is right.", "C"),
        ("(D) is correct since it is a gas.", "D"),
        ("B is the correct answer here.", "B"),
        ("Choice: (B)", "B"),
        ("So option C\nThanks!", "C"),
        ("This is a choice I made.", None),
        ("Option 3 is best", None),
    ],
)
def test_option_letters_stated_in_a_sentence(text, letter):
    assert extract_answer(text, "mc") == letter
