"""The distill stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.consistency import FilterConfig
from sdd_data.engines.base import DecodingConfig, EngineConfig


@dataclass
class RayOptions:
    """How `--executor ray` runs: the cluster and its teacher replicas."""

    ray_address: str | None = None
    """Ray cluster to join: `auto` finds a running one, `ray://host:10001` names one; unset starts a local one."""
    replicas: int = 1
    """Teacher replicas (Ray actors), each with its own engine; a shard goes to whichever is free."""
    shards_per_call: int = 1
    """Shards a replica takes at once. A vllm replica streams across them, so only the end of a call waits for
    its longest rows: on GPUs give each call a few thousand rows; a failed call is redone whole."""
    cpus_per_replica: float = 1.0
    """CPUs each replica asks Ray for. A vllm replica on a cluster with GPUs also asks for
    tensor_parallel_size GPUs."""


@dataclass
class DistillConfig:
    """Everything the distill stage needs; every field is also a CLI flag and a YAML key."""

    source: SourceSpec
    teacher: str = "smollm2"
    """Teacher model: `smollm2` (embedded CPU default), a local folder, or a Hub id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the teacher."""
    engine: str = "transformers"
    """Teacher engine: transformers (CPU or GPU) or vllm."""
    template: str = "auto"
    """Rewrite template name (sdft, sdft-refer, gsm8k, chat, gsm8k-chat), a template file, or auto."""
    output: str = "runs/distilled"
    """Output folder; rerunning the same command there resumes the run."""
    shard_size: int = 256
    """Rows per shard: the unit of work that a crash can lose and a rerun redoes, and that a Ray replica takes."""
    executor: str = "local"
    """Where the teacher runs: local (this machine; with --data-parallel-size N, one process per vllm replica)
    or ray (a pool of teacher replicas on a Ray cluster, see --ray-address and --replicas)."""
    overwrite: bool = False
    """Discard the results of an earlier run in the output folder and start over."""
    strict: bool = False
    """Stop at the first row with an empty or non-string field instead of setting it aside."""
    decontaminate: str | None = None
    """Evaluation files to decontaminate against, comma-separated (multiple-choice JSONL, GSM8K test, any source):
    rows sharing a word n-gram with an item are set aside with the reason `contaminated`, before the teacher runs."""
    decontamination_ngram: int = 13
    """Words per n-gram for --decontaminate (13 is the usual rule)."""
    truncate_long_prompts: bool = False
    """Rows whose rewrite prompt leaves no room in the teacher's context are set aside with the reason
    `prompt_too_long`; with this, the reference response inside the prompt is cut instead (from its end, leaving
    room for max_new_tokens new tokens, at most half the context) and a rewrite kept from it has the reason
    `prompt_truncated`."""
    turn_context: str = "original"
    """What the teacher sees as the earlier assistant turns of a conversation: original (as the source wrote
    them; every turn is generated at once) or rewritten (what the earlier turns kept, turn by turn in rounds)."""
    reasoning: str = "separate"
    """What a reasoning teacher's `<think>…</think>` becomes: separate (the rewrite is the answer, the thinking
    goes to `teacher_reasoning`), strip (the thinking is dropped) or keep (it stays in the rewrite). The filter
    always judges the answer alone."""
    attempts: int = 1
    """Generations a row may take: a rewrite the filter rejects is sampled again, up to this many generations in
    all, and the first that passes is kept (rejection sampling). Attempt k samples at --retry-temperature with a
    seed from the row id and k; the stats count kept rewrites by attempt and the tokens every attempt took."""
    retry_temperature: float = 0.7
    """Sampling temperature of every attempt after the first (the first decodes as --temperature says)."""
    chat_template_kwargs: dict = field(default_factory=dict)
    """Switches passed to the teacher's chat template, e.g. enable_thinking=false; recorded with the run."""
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    engine_options: EngineConfig = field(default_factory=EngineConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    ray: RayOptions = field(default_factory=RayOptions)

    def output_neutral_options(self) -> frozenset[str]:
        """Options that change how a run goes but not the rows it writes, so a run (or a pipeline step) begun
        under other values of them resumes (or is skipped): where it runs and on how many replicas, and the
        engine options the chosen engine does not read. With greedy decoding the transformers engine's
        batch_size and prompt_lookup are among them too: a row's greedy tokens depend neither on its batch mates
        nor on the drafts checked beside them (tested)."""
        from sdd_data.engines import ENGINES, engine_traits

        used = engine_traits(self.engine).options if self.engine in ENGINES else frozenset()
        unused = {item.name for item in fields(EngineConfig) if item.name not in used}
        execution = {"executor", *(item.name for item in fields(RayOptions))}
        if self.decoding.greedy and self.attempts == 1:  # retries sample, and which rows retry together varies
            execution.update({"batch_size", "prompt_lookup"})
        return frozenset(execution | unused)
