"""Rewrite templates: how the teacher is asked to answer in its own voice, given the reference answer.

Placeholders: `{instruction}` (the instruction, then the input after a newline when there is one)
and `{reference}` (the reference response, stripped). A chat template renders through the
tokenizer's chat template; a text template is used verbatim. The assistant prefix is part of the
prompt but never of the stored rewrite.

A turn of a conversation comes with its `history` (the turns before the user turn it answers). A chat
template renders them as chat messages, after one system message (the template's system text, then the
conversation's own system prompt); a text template puts them, as a `Role: text` transcript, before the
instruction. `chat_template_kwargs` (`enable_thinking=false`, …) go to the tokenizer's chat template.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdd_data.data.conversations import chat_messages, transcript
from sdd_data.data.records import user_prompt
from sdd_data.errors import SddError
from sdd_data.registry import Registry
from sdd_data.text_files import read_yaml, short_repr

SDFT_SYSTEM = (
    "Below are an instruction that describes a task along with a reference answer. "
    "Using the reference answer as a guide, write your own response."
)
SDFT_REFER_SYSTEM = (
    "Below are an instruction that describes a task along with a reference answer. "
    "Refer to the reference answer and write your own response."
)
SDFT_USER = "### Instruction:\n{instruction}\n\n### Reference Answer:\n{reference}\n\n### Response:\n"
MATH_SYSTEM = (
    "You are an expert in math. Below are a math question and its reference answer. "
    "Refer to the reference answer and write a response that appropriately answers the question."
)
MATH_PREFIX = "Great! Let's think step by step. "
PLACEHOLDER = re.compile(r"\{(instruction|reference)\}")


@dataclass(frozen=True)
class Template:
    """A rewrite prompt: system text, user turn, optional assistant prefix, chat or plain text."""

    name: str
    system: str
    user: str
    assistant_prefix: str = ""
    chat: bool = True
    description: str = ""
    chat_template_kwargs: dict = field(default_factory=dict)

    def fill(self, row: dict) -> str:
        """The user turn with the row's instruction and reference answer substituted."""
        instruction = user_prompt(row["instruction"], row["input"])
        earlier = [turn for turn in row.get("history") or () if turn["role"] != "system"]
        if earlier and not self.chat:
            instruction = f"{transcript(earlier)}\n\nUser: {instruction}"
        values = {"instruction": instruction, "reference": row["response"].strip()}
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], self.user)

    def render(self, row: dict, tokenizer) -> str:
        """The full prompt string for one row (or turn), special tokens included, ready to tokenize as is."""
        history = row.get("history") or []
        own_system = "\n\n".join(turn["content"] for turn in history if turn["role"] == "system")
        system = "\n\n".join(text for text in (self.system, own_system) if text)
        if self.chat:
            messages = [{"role": "system", "content": system}] if system else []
            messages += chat_messages([turn for turn in history if turn["role"] != "system"])
            messages.append({"role": "user", "content": self.fill(row)})
            extra = self.chat_template_kwargs
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
        else:
            body = f"{system}\n\n{self.fill(row)}" if system else self.fill(row)
            prompt = _bos_prefix(tokenizer) + body
        return prompt + self.assistant_prefix

    def to_dict(self) -> dict:
        """The template as data, for provenance (chat template switches only when some are set)."""
        values = asdict(self)
        if not values["chat_template_kwargs"]:
            del values["chat_template_kwargs"]
        return values


def _bos_prefix(tokenizer) -> str:
    """The BOS text the tokenizer would add on its own (engines tokenize without special tokens)."""
    with_special = tokenizer("x").input_ids
    without = tokenizer("x", add_special_tokens=False).input_ids
    if len(with_special) > len(without) and with_special[1:] == without:
        return tokenizer.decode(with_special[:1])
    return ""


TEMPLATES: Registry[Template] = Registry(
    "template",
    {
        template.name: template
        for template in (
            Template(
                "sdft",
                SDFT_SYSTEM,
                SDFT_USER,
                chat=False,
                description="SDFT's generic alpaca_distill_using prompt, as plain text",
            ),
            Template(
                "sdft-refer",
                SDFT_REFER_SYSTEM,
                SDFT_USER,
                chat=False,
                description="SDFT's alpaca_distill_refer variant, as plain text",
            ),
            Template(
                "gsm8k",
                MATH_SYSTEM,
                "[INST] {instruction}\n\n{reference} [/INST] ",
                assistant_prefix=MATH_PREFIX,
                chat=False,
                description="SDFT's gsm8k_distill prompt in Llama-2 chat format",
            ),
            Template(
                "chat",
                SDFT_SYSTEM,
                "### Instruction:\n{instruction}\n\n### Reference Answer:\n{reference}",
                description="the SDFT prompt through the tokenizer's chat template",
            ),
            Template(
                "gsm8k-chat",
                MATH_SYSTEM,
                "{instruction}\n\n{reference}",
                assistant_prefix=MATH_PREFIX,
                description="the GSM8K prompt through the tokenizer's chat template",
            ),
        )
    },
)
"""Built-in template name -> template."""

AUTO = "auto"


def load_template_file(path: str | Path) -> Template:
    """A template from a YAML/JSON file with keys name, system, user and optionally assistant_prefix, chat."""
    path = Path(path)
    values = read_yaml(path, "template file")
    if not isinstance(values, dict) or "user" not in values:
        raise SddError(f"template file {path} must be a mapping with at least a `user` key")
    allowed = {"name", "system", "user", "assistant_prefix", "chat", "description"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise SddError(
            f"template file {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    text_keys = {"name", "system", "user", "assistant_prefix", "description"}
    wrong = sorted(key for key in text_keys & set(values) if not isinstance(values[key], str))
    if wrong:
        found = ", ".join(f"{key} is a {type(values[key]).__name__}" for key in wrong)
        raise SddError(f"template file {path}: {', '.join(wrong)} must be text ({found})")
    if not isinstance(values.get("chat", True), bool):
        raise SddError(f"template file {path}: chat must be true or false, got {short_repr(values['chat'])}")
    if "{instruction}" not in values["user"]:
        raise SddError(f"template file {path}: the user turn has no {{instruction}} placeholder")
    values.setdefault("name", path.stem)
    values.setdefault("system", "")
    return Template(**values)


def get_template(name_or_path: str, tasks: set[str]) -> Template:
    """A registered template, a template file, or (for `auto`) the math template for all-math data, else `chat`."""
    if name_or_path == AUTO:
        return TEMPLATES.get("gsm8k-chat" if tasks == {"math"} else "chat")
    if name_or_path in TEMPLATES:
        return TEMPLATES.get(name_or_path)
    if Path(name_or_path).suffix.lower() in (".yaml", ".yml", ".json") or Path(name_or_path).is_file():
        if not Path(name_or_path).is_file():
            raise SddError(f"template file {name_or_path} does not exist")
        return load_template_file(name_or_path)
    raise SddError(f"unknown template {name_or_path!r}; known: {', '.join(TEMPLATES)} (or a .yaml file)")
