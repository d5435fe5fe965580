"""Rewrite templates: SDFT texts verbatim, chat rendering, assistant prefix, user files."""

import pytest

from sdd_data.distill.templates import MATH_PREFIX, TEMPLATES, get_template, load_template_file
from sdd_data.errors import SddError

ROW = {"instruction": "Add the numbers.", "input": "2 and 3", "response": "  2 + 3 = 5.\n", "task": "math"}


class ChatMLTokenizer:
    """A tokenizer stand-in with a ChatML chat template and no BOS token."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=True):
        class Encoding:
            input_ids = [ord(c) for c in text]

        return Encoding()


def test_sdft_generic_template_is_verbatim():
    prompt = TEMPLATES.get("sdft").render(ROW, ChatMLTokenizer())
    assert prompt == (
        "Below are an instruction that describes a task along with a reference answer. "
        "Using the reference answer as a guide, write your own response.\n\n"
        "### Instruction:\nAdd the numbers.\n2 and 3\n\n### Reference Answer:\n2 + 3 = 5.\n\n### Response:\n"
    )
    assert "Refer to the reference answer and write your own response." in TEMPLATES.get("sdft-refer").render(
        ROW, ChatMLTokenizer()
    )


def test_gsm8k_template_ends_with_the_assistant_prefix():
    prompt = TEMPLATES.get("gsm8k").render(ROW, ChatMLTokenizer())
    assert prompt.endswith("[/INST] " + MATH_PREFIX)
    assert prompt.startswith("You are an expert in math.")


def test_chat_templates_go_through_the_tokenizer():
    prompt = TEMPLATES.get("gsm8k-chat").render(ROW, ChatMLTokenizer())
    assert prompt.startswith("<|im_start|>system\nYou are an expert in math.")
    assert "<|im_start|>user\nAdd the numbers.\n2 and 3\n\n2 + 3 = 5.<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n" + MATH_PREFIX)


def test_braces_in_the_data_are_left_alone():
    row = {**ROW, "response": "\\boxed{\\frac{1}{2}} and {instruction}"}
    assert "\\boxed{\\frac{1}{2}} and {instruction}" in TEMPLATES.get("chat").fill(row)


def test_auto_picks_the_math_template_only_for_all_math_data():
    assert get_template("auto", {"math"}).name == "gsm8k-chat"
    assert get_template("auto", {"math", "free"}).name == "chat"


def test_template_from_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("system: Be kind.\nuser: 'Q: {instruction}\nA: {reference}'\nassistant_prefix: 'Sure. '\n")
    template = get_template(str(path), {"free"})
    assert (template.name, template.assistant_prefix) == ("mine", "Sure. ")
    assert template.fill(ROW) == "Q: Add the numbers.\n2 and 3 A: 2 + 3 = 5."


def test_bad_templates_are_clear_errors(tmp_path):
    with pytest.raises(SddError, match="unknown template 'nope'; known: sdft"):
        get_template("nope", {"free"})
    with pytest.raises(SddError, match="does not exist"):
        get_template(str(tmp_path / "missing.yaml"), {"free"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("user: no placeholder here\n")
    with pytest.raises(SddError, match="no {instruction} placeholder"):
        load_template_file(bad)
    bad.write_text("user: '{instruction}'\ncolour: red\n")
    with pytest.raises(SddError, match="unknown key"):
        load_template_file(bad)


def test_template_fields_of_the_wrong_type_are_clear_errors(tmp_path):
    listed = tmp_path / "listed.yaml"
    listed.write_text("user:\n  - Rewrite {instruction}\n")
    with pytest.raises(SddError, match=r"user must be text \(user is a list\)"):
        load_template_file(listed)
    maybe = tmp_path / "maybe.yaml"
    maybe.write_text("user: Rewrite {instruction}.\nchat: maybe\n")
    with pytest.raises(SddError, match="chat must be true or false, got 'maybe'"):
        load_template_file(maybe)
    broken = tmp_path / "broken.yaml"
    broken.write_text("user: [Rewrite {instruction}]\n")
    with pytest.raises(SddError, match="broken.yaml is not valid YAML") as raised:
        load_template_file(broken)
    assert "\n" not in str(raised.value)
