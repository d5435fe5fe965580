"""The one place that loads a causal LM or a tokenizer, picks its device and dtype, and compares tokenizers.

Every stage that runs a model (distill's transformers engine, select's scorer, prune, train, eval and
speculative decoding) loads it here, from safetensors only, with one error policy: a checkpoint that
does not load is one `SddError` line naming the folder and the reason, whichever stage hit it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sdd_data.errors import SddError, first_line, require

DTYPES = ("float32", "bfloat16", "float16")
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    ImportError,
    AttributeError,
    EOFError,
)
"""What transformers and safetensors raise for a missing, truncated or malformed checkpoint."""


def resolve_dtype(dtype: str, on_cpu: bool, stored: str | None = None) -> str:
    """The weights dtype to use: `auto` means bfloat16 on GPU; on CPU, float32, or bfloat16 where the checkpoint
    stores bfloat16 weights (`stored`) and the CPU computes in bfloat16 natively.

    On CPU `auto` never rounds weights: a float32 checkpoint (the dequantized SmolLM2 among them) drifts when cast
    to bfloat16, while a bfloat16 one loses nothing and decodes about twice as fast where the CPU has
    AVX512-BF16 or AMX.
    """
    if dtype == "auto":
        if not on_cpu:
            return "bfloat16"
        return "bfloat16" if stored == "bfloat16" and cpu_has_native_bfloat16() else "float32"
    if dtype not in DTYPES:
        raise SddError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    return dtype


NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags (as Linux lists them in /proc/cpuinfo) of instructions that multiply bfloat16 matrices."""


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (read from /proc/cpuinfo; False where it is absent)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return not NATIVE_BFLOAT16_FLAGS.isdisjoint(flags)


def stored_dtype(path: str | Path) -> str | None:
    """The dtype a checkpoint folder's config.json declares for its weights (`dtype`, or the older `torch_dtype`)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    declared = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    return declared if isinstance(declared, str) else None


def resolve_device(device: str) -> str:
    """The torch device for `device` (auto, cpu, cuda or cuda:N): auto is cuda when torch sees a GPU, else cpu."""
    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        raise SddError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return device
    torch = require("torch", "hf")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise SddError(f"device {device} asked for, but torch sees no CUDA GPU")
    return device


def _load_errors() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError

    return (*LOAD_ERRORS, SafetensorError)


def load_causal_lm(
    path: str | Path, *, dtype: str = "auto", device: str | None = None, trust_remote_code: bool = False, **options: Any
) -> Any:
    """A causal LM from a checkpoint folder's safetensors weights, in eval mode.

    `dtype` is a torch dtype name, or `auto` for the dtype the checkpoint declares; `device`, when
    given, is where the model is moved (`resolve_device` first for `auto`). `options` go to
    `from_pretrained` as they are (attn_implementation, ...).
    """
    transformers = require("transformers", "hf")
    torch = require("torch", "hf")
    if dtype != "auto" and dtype not in DTYPES:
        raise SddError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=dtype if dtype == "auto" else getattr(torch, dtype),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            **options,
        )
    except _load_errors() as error:
        raise SddError(f"cannot load the model in {path}: {first_line(error)}") from None
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False, chat_template: bool = False) -> Any:
    """A checkpoint folder's tokenizer; with `chat_template`, one without a chat template is refused."""
    transformers = require("transformers", "hf")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except _load_errors() as error:
        raise SddError(f"cannot load the tokenizer in {path}: {first_line(error)}") from None
    if chat_template and not getattr(tokenizer, "chat_template", None):
        raise SddError(f"the tokenizer in {path} has no chat template, which chat data needs")
    return tokenizer


def _first_vocabulary_difference(first: dict, second: dict, names: tuple[str, str]) -> str:
    """The lowest-id token that is not the same in both vocabularies, and which side has it."""
    differing = sorted(set(first.items()) ^ set(second.items()), key=lambda item: (item[1], item[0]))
    token, index = differing[0]
    side = names[0] if first.get(token) == index else names[1]
    return f"{token!r} is id {index} only in {side}"


def tokenizer_differences(
    first: Any, second: Any, chat_template: bool = True, names: tuple[str, str] = ("the first", "the second")
) -> list[str]:
    """What differs between two tokenizers: vocabulary, special tokens and (optionally) the chat template."""
    differences = []
    vocab_first, vocab_second = first.get_vocab(), second.get_vocab()
    if vocab_first != vocab_second:
        differences.append(
            f"vocabulary ({len(vocab_first)} vs {len(vocab_second)} tokens; first difference: "
            f"{_first_vocabulary_difference(vocab_first, vocab_second, names)})"
        )
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if getattr(first, name, None) != getattr(second, name, None):
            differences.append(
                f"special token {name} ({getattr(first, name, None)!r} vs {getattr(second, name, None)!r})"
            )
    specials_first, specials_second = set(first.all_special_tokens), set(second.all_special_tokens)
    if specials_first != specials_second:
        only = sorted(specials_first ^ specials_second)
        differences.append(f"special tokens ({', '.join(map(repr, only[:5]))} in only one of them)")
    if chat_template and (first.chat_template or None) != (second.chat_template or None):
        differences.append("chat template")
    return differences


def check_same_tokenizer(
    first: Any, second: Any, first_name: str, second_name: str, chat_template: bool = True
) -> None:
    """Refuse two models that must share one tokenizer but do not, naming what differs."""
    differences = tokenizer_differences(first, second, chat_template, (first_name, second_name))
    if differences:
        raise SddError(
            f"{first_name} and {second_name} must share one tokenizer, but theirs differ in: {'; '.join(differences)}"
        )
