"""Final-answer extraction, normalisation and comparison for math and multiple-choice rows.

Extractors are found by name; each task has a priority chain of them and the first
extractor that finds something gives the answer. Answers compare numerically (with a
tolerance) when both sides parse as numbers, otherwise as normalised LaTeX strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache

from sdd_data.registry import Registry

Extractor = Callable[[str], str | None]


# A number as written in prose: optional sign and currency, comma thousands groups of exactly
# three digits, decimals, an exponent (`1e3`, `2.5E+4`), a simple fraction and a percent sign.
# Spaces never join digits, so "3 4" stays two numbers.
_NUMBER_TOKEN = (
    r"(?<![\w./])[-+]?\$?"
    r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+|(?=\.\d))"
    r"(?:\.\d+)?"
    r"(?:[eE][-+]?\d+(?![\w.]))?"
    r"(?:/\d+(?:\.\d+)?)?"
    r"%?"
)
_NUMBER_IN_TEXT = re.compile(_NUMBER_TOKEN)

_TRAILING_PUNCTUATION = " \t\n.,;:!?*"


def _clean_answer(raw: str) -> str:
    """Trim an extracted answer phrase: whitespace, closing punctuation and markdown bold."""
    return raw.strip().rstrip(_TRAILING_PUNCTUATION).strip("*_ ")


_ANSWER_IS = re.compile(r"answer\s+is\b\s*[:：]?\s*", re.IGNORECASE)
_LEADING_NUMBER = re.compile(_NUMBER_TOKEN + r"(?=\s+[A-Za-z]|\s*$)")
_PARENTHESISED_LETTER = re.compile(r"\(([A-Ja-j])\)$")
_ASSIGNMENT = re.compile(r"[A-Za-z]\w{0,2}\s*=\s*(?=\S)")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _answer_in_phrase(phrase: str) -> str:
    """The answer inside a phrase that states it (after "answer is" or "####").

    "(B)" gives "B", "18 apples" gives "18", "x = 5" gives "5", prose such as "that she has 72
    clips" gives its last number; anything else (LaTeX, tuples, words) is returned as it is.
    """
    letter = _PARENTHESISED_LETTER.match(phrase)
    if letter:
        return letter.group(1).upper()
    assignment = _ASSIGNMENT.match(phrase)
    if assignment:
        phrase = phrase[assignment.end() :]
    number = _LEADING_NUMBER.match(phrase)
    if number:
        return number.group(0)
    if "\\" not in phrase and _WORD.search(phrase):
        numbers = _NUMBER_IN_TEXT.findall(phrase)
        if numbers:
            return numbers[-1]
    return phrase


def _lowered(text: str) -> str:
    """`text.lower()` with every index unchanged (the rare letters whose lower case is longer stay)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(char if len(low := char.lower()) != 1 else low for char in text)


def extract_gsm8k(text: str) -> str | None:
    """The answer on a final `#### N` line (GSM8K's ending); a `####` heading elsewhere is ignored."""
    position = text.rfind("####")
    if position < 0:
        return None
    line, _, after = text[position + 4 :].partition("\n")
    if after and not after.isspace():
        return None
    answer = _clean_answer(line.lstrip("#"))
    return _answer_in_phrase(answer) if answer else None


def extract_answer_is(text: str) -> str | None:
    """The answer after the last "answer is" ("The final answer is: 18", "answer is (B)")."""
    lowered = _lowered(text)
    end = len(text)
    while (start := lowered.rfind("answer is", 0, end)) >= 0:
        marker = _ANSWER_IS.match(text, start)
        if marker:
            phrase = _clean_answer(text[marker.end() :].split("\n", 1)[0])
            return _answer_in_phrase(phrase) if phrase else None
        end = start
    return None


_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _balanced_argument(text: str, open_brace: int) -> str | None:
    """The text inside the braces that open at `open_brace`, or None when they never close."""
    depth = 0
    for index in range(open_brace, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : index]
    return None


def _box_content(text: str, command_end: int) -> str | None:
    """The argument of a box command whose name ends at `command_end`: `{...}` or `\\boxed 5`."""
    rest = text[command_end : command_end + 1]
    if rest == "{":
        return _balanced_argument(text, command_end)
    if rest == " ":
        token = text[command_end + 1 :].split(None, 1)
        return token[0].rstrip("$") if token else None
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the last balanced `\\boxed{...}` (or `\\fbox{...}`), nested braces included."""
    if "box" not in text:
        return None
    end = len(text)
    while True:
        start, command = -1, ""
        for name in _BOX_COMMANDS:
            found = text.rfind(name, 0, end)
            if found > start:
                start, command = found, name
        if start < 0:
            return None
        content = _box_content(text, start + len(command))
        if content is not None and content.strip():
            return content.strip()
        end = start


_DIGIT = re.compile(r"\d")


def extract_last_number(text: str) -> str | None:
    """The last number in the text (`-5`, `1,000`, `2.50`, `.5`, `1e3`, `3/4`, `$5.00`, `50%`)."""
    digit = _DIGIT.search(text[::-1])
    if digit is None:
        return None
    last_digit = len(text) - 1 - digit.start()
    # Numbers never contain whitespace: the last one starts in the word holding the last digit,
    # unless that word's digits are not a number ("x2"); then search everything before it.
    word_start = (
        max(text.rfind(" ", 0, last_digit), text.rfind("\n", 0, last_digit), text.rfind("\t", 0, last_digit)) + 1
    )
    found = _NUMBER_IN_TEXT.findall(text, word_start) or _NUMBER_IN_TEXT.findall(text, 0, word_start)
    return found[-1] if found else None


_MC_LETTER = r"[ \t*]*(?:\(([A-Ja-j])\)|([A-J])(?!\w))"
_MC_STATEMENTS = (
    re.compile(r"(?i:answer\s+is)\s*[:：]?(?:\s*(?i:option))?" + _MC_LETTER),
    re.compile(r"(?i:answer)\s*\**\s*[:：]" + _MC_LETTER),
)
_MC_LONE_LETTER = re.compile(r"[ \t*]*(?:\(([A-Ja-j])\)|([A-J]))[ \t]*[.:)]?[ \t*]*")
_MC_LONE_LINE_CHARS = 12


def _stated_letter(text: str) -> str | None:
    """The letter of the last "answer is (C)" or "Answer: C" statement."""
    lowered = _lowered(text)
    end = len(text)
    while (start := lowered.rfind("answer", 0, end)) >= 0:
        for pattern in _MC_STATEMENTS:
            match = pattern.match(text, start)
            if match:
                return (match.group(1) or match.group(2)).upper()
        end = start
    return None


_MC_OPTION_STATEMENTS = (
    # "(C) is correct", "C is the right answer"
    re.compile(r"(?<![\w(])\(?([A-J])\)?[ \t]+is[ \t]+(?:the[ \t]+)?(?i:correct|right)\b"),
    # "the correct option is (C)", "option C", "choice: (B)"
    re.compile(
        r"\b(?i:option|choice)\b[ \t]*(?i:is)?[ \t]*[:：]?[ \t]*(?:\(([A-J])\)|([A-J])"
        r"(?=[ \t]*(?:[.,;:!?]|$)|[ \t]+(?i:is|because|since|as)\b))",
        re.MULTILINE,
    ),
)


def _option_statement(text: str) -> str | None:
    """The letter of the last sentence naming an option as the answer: "(C) is correct", "option C"."""
    for pattern in _MC_OPTION_STATEMENTS:
        matches = list(pattern.finditer(text))
        if matches:
            return next(group for group in matches[-1].groups() if group).upper()
    return None


def _lone_letter(text: str) -> str | None:
    """The letter of the last line that holds only an option letter ("C", "(C)", "C.")."""
    for line in reversed(text.split("\n")):
        if len(line) <= _MC_LONE_LINE_CHARS:
            match = _MC_LONE_LETTER.fullmatch(line)
            if match:
                return (match.group(1) or match.group(2)).upper()
    return None


_MC_LEADING_OPTION = re.compile(r"[ \t*]*(?:\(([A-J])\)|([A-J])[.)])[ \t]+\S")


def _leading_option(text: str) -> str | None:
    """The letter of an answer that opens by quoting an option ("D. Helium", "(D) Helium")."""
    match = _MC_LEADING_OPTION.match(text)
    return (match.group(1) or match.group(2)) if match else None


def extract_mc_letter(text: str) -> str | None:
    """An option letter A-J: the last "answer is (C)" / "Answer: C", else the last "(C) is correct" or "option C",
    else a line holding only "(C)", else an opening that quotes an option ("D. Helium")."""
    return _stated_letter(text) or _option_statement(text) or _lone_letter(text) or _leading_option(text)


EXTRACTORS: Registry[Extractor] = Registry(
    "answer extractor",
    {
        "gsm8k": extract_gsm8k,
        "answer_is": extract_answer_is,
        "boxed": extract_boxed,
        "last_number": extract_last_number,
        "mc_letter": extract_mc_letter,
    },
)
"""Extractor name -> function (text -> answer string or None)."""

TASK_EXTRACTORS: dict[str, tuple[str, ...]] = {
    "math": ("gsm8k", "boxed", "answer_is", "last_number"),
    "mc": ("mc_letter",),
    "code": (),
    "free": (),
}


def extract_answer(text: str, task: str) -> str | None:
    """The answer found by the first extractor in the task's chain, or None."""
    for name in TASK_EXTRACTORS.get(task, ()):
        answer = EXTRACTORS.get(name)(text)
        if answer is not None:
            return answer
    return None


# --- normalisation -------------------------------------------------------------------------

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\(?:left|right|displaystyle)(?![a-zA-Z])|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°")
_SHORT_FRACTION = re.compile(r"\\frac(\d)(\d)")
_BRACELESS_FRACTION = re.compile(r"\\frac\s*(\w|\{[^{}]*\})\s*(\w|\{[^{}]*\})")
_BRACELESS_ARGUMENT = re.compile(r"(\^|_|\\sqrt)\s*(\w)")
_FRACTION_ALIASES = re.compile(r"\\[dt]frac")


def _strip_math_delimiters(answer: str) -> str:
    """Remove `$...$`, `\\(...\\)` and `\\[...\\]` around an answer."""
    answer = answer.strip()
    for opening, closing in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(answer) > len(opening) + len(closing) and answer.startswith(opening) and answer.endswith(closing):
            return answer[len(opening) : -len(closing)].strip()
    return answer


def _unwrap_text(answer: str) -> str:
    """Replace `\\text{x}` (and `\\mathrm{x}` ...) by `x`, innermost first."""
    previous = None
    while previous != answer and "\\" in answer:
        previous, answer = answer, _TEXT_WRAPPER.sub(r"\1", answer)
    return answer


def normalize_latex(answer: str) -> str:
    """A canonical string for a non-numeric answer: no spacing macros, wrappers or delimiters."""
    answer = _strip_math_delimiters(answer)
    if "\\" in answer or "°" in answer:
        answer = _unwrap_text(answer)
        answer = _LATEX_SPACING.sub("", answer)
        answer = _DEGREES.sub("", answer)
        answer = _FRACTION_ALIASES.sub(r"\\frac", answer)
        answer = _BRACELESS_FRACTION.sub(_braced_fraction, answer)
    # Optional braces: x^2 and x^{2}, \sqrt2 and \sqrt{2} are the same answer.
    answer = _BRACELESS_ARGUMENT.sub(r"\1{\2}", answer)
    answer = "".join(answer.split())
    return answer.rstrip(".")


def _braced(argument: str) -> str:
    return argument if argument.startswith("{") else "{" + argument + "}"


def _braced_fraction(match: re.Match) -> str:
    """`\\frac12`, `\\frac1{x}` and `\\frac{1}{2}` written the same way."""
    return f"\\frac{_braced(match.group(1))}{_braced(match.group(2))}"


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?:/[-+]?\d+(?:\.\d+)?)?")
_LATEX_FRACTION = re.compile(r"([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}")
# The common case, parsed without the general path: sign, dollar, thousands, decimals, percent.
_DECIMAL = re.compile(r"([-+]?)\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?%?")
_NUMBER_NOISE = ("\\$", "$", "\\%", "%", "{,}")
_SPACED_SLASH = re.compile(r"\s*/\s*")


def _decimal(text: str) -> Fraction | None:
    """The exact value of `-1,234.50`-style numbers (optional `$` and `%`); None for other forms."""
    match = _DECIMAL.fullmatch(text) if len(text) <= MAX_NUMBER_CHARS else None
    if match is None:
        return None
    sign, whole, decimals = match.groups()
    digits = int(whole.replace(",", "") + decimals) if decimals else int(whole.replace(",", ""))
    value = Fraction(-digits if sign == "-" else digits)
    return value / 10 ** len(decimals) if decimals else value


MAX_NUMBER_CHARS = 64
"""Longer digit strings are not parsed as numbers (compared as text instead): parsing stays bounded."""
MAX_EXPONENT = 400
"""Exponents beyond ±this (`1e9999999999`) are not parsed: the exact value would not fit in memory."""
_EXPONENT = re.compile(r"[eE]([-+]?\d+)")


def _fraction(text: str) -> Fraction | None:
    """`Fraction` of a plain number, a ratio `a/b`, `.5` or `1e3`; None if it is not one, or too large to parse."""
    if len(text) > MAX_NUMBER_CHARS or not _PLAIN_NUMBER.fullmatch(text):
        return None
    if any(abs(int(exponent)) > MAX_EXPONENT for exponent in _EXPONENT.findall(text)):
        return None
    numerator, _, denominator = text.partition("/")
    try:
        value = Fraction(numerator)
        if denominator:
            value /= Fraction(denominator)
    except (ValueError, ZeroDivisionError):
        return None
    return value


def _latex_fraction(text: str) -> Fraction | None:
    """The value of `\\frac{a}{b}` (optionally signed) with numeric a and b."""
    match = _LATEX_FRACTION.fullmatch(text)
    if match is None:
        return None
    sign, top, bottom = match.groups()
    numerator, denominator = parse_number(top), parse_number(bottom)
    if numerator is None or not denominator:
        return None
    return -numerator / denominator if sign == "-" else numerator / denominator


@lru_cache(maxsize=8192)
def parse_number(answer: str) -> Fraction | None:
    """The exact value of a numeric answer, or None when the answer is not a number.

    Handles signs, `1,000`, `$5.00`, `50%` (as 50), `0.5`, `.5`, `1e3`, `3/4`, `\\frac{1}{2}`,
    `\\dfrac12`, `\\$`, `\\%`, `{,}` thousands and `\\text{...}` wrappers.
    """
    text = answer.strip()
    value = _decimal(text)
    if value is not None:
        return value
    text = _strip_math_delimiters(text)
    if "\\" in text:
        text = _unwrap_text(text)
        text = _FRACTION_ALIASES.sub(r"\\frac", text)
        text = _SHORT_FRACTION.sub(r"\\frac{\1}{\2}", text)
        text = _DEGREES.sub("", text)
        text = _LATEX_SPACING.sub("", text)
    for noise in _NUMBER_NOISE:
        text = text.replace(noise, "")
    text = _SPACED_SLASH.sub("/", text.strip().rstrip("."))
    for parse in (_decimal, _fraction, _latex_fraction):
        value = parse(text)
        if value is not None:
            return value
    return None


_OPTION_LETTER = re.compile(r"\(?([A-Ja-j])\)?\.?")


def _option_letter(answer: str) -> str | None:
    """The upper-case letter when the answer is just an option letter ("c", "(C)", "C.")."""
    match = _OPTION_LETTER.fullmatch(answer.strip())
    return match.group(1).upper() if match else None


def answers_match(predicted: str, reference: str, rel_tol: float = 1e-4, abs_tol: float = 1e-6) -> bool:
    """Whether two answers agree: numerically within tolerance, else as normalised strings."""
    predicted_value, reference_value = parse_number(predicted), parse_number(reference)
    if predicted_value is not None and reference_value is not None:
        if predicted_value.denominator == 1 and reference_value.denominator == 1:
            return predicted_value == reference_value  # whole numbers (counts, totals) agree exactly or not at all
        # Exact arithmetic: huge values never overflow a float conversion.
        tolerance = max(Fraction(rel_tol) * max(abs(predicted_value), abs(reference_value)), Fraction(abs_tol))
        return abs(predicted_value - reference_value) <= tolerance
    predicted_letter, reference_letter = _option_letter(predicted), _option_letter(reference)
    if predicted_letter is not None and reference_letter is not None:
        return predicted_letter == reference_letter
    return normalize_latex(predicted) == normalize_latex(reference)
