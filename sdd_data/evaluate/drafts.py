"""Speculative-decoding acceptance of each draft for the baseline, measured the way the chosen engine can: with
the exact greedy loop over transformers models, or with vLLM's own draft-model speculative decoding."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

from sdd_data.engines import Capability, EngineTable
from sdd_data.errors import SddError
from sdd_data.evaluate.config import EvalConfig
from sdd_data.evaluate.speculative import AcceptanceCounts, measure_acceptance, measure_acceptance_vllm
from sdd_data.models import load_tokenizer

MeasureDraft = Callable[[EvalConfig, str, str, str, list[str]], AcceptanceCounts]
"""(config, target path, draft name, draft path, prompts) -> the draft's acceptance counts."""


def exact_acceptance(
    config: EvalConfig, target_path: str, draft_name: str, draft_path: str, prompts: list[str]
) -> AcceptanceCounts:
    """Acceptance from the exact greedy verification loop, one progress bar per draft."""
    with tqdm(total=len(prompts), desc=f"draft {draft_name}", unit="prompt") as bar:
        return measure_acceptance(
            target_path,
            draft_path,
            prompts,
            config.draft_tokens,
            config.speculative_max_new_tokens,
            config.dtype,
            config.device,
            config.trust_remote_code,
            bar.update,
        )


def draft_model_acceptance(
    config: EvalConfig, target_path: str, draft_name: str, draft_path: str, prompts: list[str]
) -> AcceptanceCounts:
    """Acceptance from vLLM's draft-model speculative decoding metrics."""
    return measure_acceptance_vllm(
        target_path,
        draft_path,
        prompts,
        config.draft_tokens,
        config.speculative_max_new_tokens,
        config.dtype,
        config.trust_remote_code,
    )


SPECULATIVE_ENGINES: EngineTable[MeasureDraft] = EngineTable(
    "speculative engine",
    "measure speculative decoding",
    {Capability.CAUSAL_LM: exact_acceptance, Capability.DRAFT_MODEL: draft_model_acceptance},
)
"""Engine name -> how a draft's acceptance is measured with it, by what the engine can do."""


def speculative_prompts(config: EvalConfig, tokenizer) -> list[str]:
    """The first `speculative_limit` prompts of `speculative_prompts`, rendered with the target's chat template."""
    from sdd_data.data.records import user_prompt
    from sdd_data.data.sources import SourceSpec, load_rows

    rows = load_rows(SourceSpec(data=config.speculative_prompts, limit=config.speculative_limit)).rows
    if not tokenizer.chat_template:
        raise SddError("the target model has no chat template to render speculative-decoding prompts with")
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": user_prompt(row["instruction"], row["input"])}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for row in rows
    ]


def measure_drafts(config: EvalConfig, target_path: str, target_name: str, drafts: dict[str, str]) -> dict[str, dict]:
    """Acceptance rate and mean accepted length of each draft checkpoint drafting for the target."""
    if config.speculative_engine not in SPECULATIVE_ENGINES:
        raise SddError(
            f"unknown speculative_engine {config.speculative_engine!r}; use {' or '.join(SPECULATIVE_ENGINES)}"
        )
    measure = SPECULATIVE_ENGINES.get(config.speculative_engine)
    prompts = speculative_prompts(config, load_tokenizer(target_path, trust_remote_code=config.trust_remote_code))
    return {
        draft_name: {
            "target": target_name,
            "draft_tokens": config.draft_tokens,
            "engine": config.speculative_engine,
            "prompts": len(prompts),
            **measure(config, target_path, draft_name, draft_path, prompts).summary(),
        }
        for draft_name, draft_path in drafts.items()
    }
