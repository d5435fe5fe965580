"""The recovery experiment: does self-distilled data recover a pruned model better than the alternatives?

    python benchmarks/recovery/run.py --preset cpu

Every arm runs through the project's own stages, as `sdd-data run` pipeline files under --work:

| arm | what it is |
|---|---|
| original | the unpruned model |
| pruned | the cut model, no recovery training |
| sft | SFT on the source responses |
| sdd | SFT on the self-distilled responses (the unpruned model is the teacher) |
| sdd-paser | SFT on PASER's 20% of sdd |
| sdd-random | SFT on a random 20% of sdd |
| kd | logit distillation (GKD, no on-policy generation) from the unpruned model on the source data |
| sdd-yield | SFT on the self-distilled responses with rejection sampling (`--attempts`): more rows keep a rewrite |
| onpolicy | on-policy distillation from the unpruned model on the training prompts (reverse KL, the student samples) |
| sdd-then-onpolicy | the sdd model, then on-policy distillation from it |
| sdd-math, sdd-general | SFT on the math part, or the general part, of sdd |
| merged | SLERP of sdd-math and sdd-general |
| minitron, sdmprune | the model cut in width instead (MLP neurons), to the depth cut's parameter count |
| minitron-sdd, minitron-kd, sdmprune-sdd, sdmprune-kd | a width cut recovered like sdd, or like kd |

The width cuts are also timed against the depth cut and the original (greedy decode tokens/s).

Resuming: a pipeline step whose output folder holds the same options is skipped, and every finished
arm's evaluation is kept in arms/<preset>/ beside the results, committed with them, under a key of its
settings and of what its inputs hold (a checkpoint's tensors, the conversations of a training set, a
file's bytes), not of where they lie or what else their folders record. A rerun on any machine, from a
fresh checkout too, recomputes only the arms missing there or whose settings or inputs changed; so do
the GSM8K gate and the choice of cut.

Writes benchmarks/recovery/results-<preset>.json, .md and .png (--results-dir), and the preset's results section
of docs/recovery.md (with the plot copied beside it); each preset has its own, so a GPU run adds its results
beside the CPU ones.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml
from analysis import (
    ARM_ORDER,
    RESULTS_PAGE,
    readme_section,
    results_files,
    results_markers,
    results_plot,
    write_results,
)
from prepare import MC_DELIMITER, prepare_data, write_jsonl
from presets import PRESETS, Preset

from sdd_data.artifacts import DISTILLED_PARQUET, EVAL_RESULTS, STATS_FILE, TRAIN_RECORD
from sdd_data.models.identity import weights_digest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = REPO.parent / "shared" / "data"


SPEED_PROMPTS, SPEED_TOKENS, SPEED_REPEATS = 16, 64, 5
"""Held-out prompts (one batch), new tokens per prompt and timed runs (the median is reported) of the
decode-speed measurement."""
LM_EVAL_CHECK_DTYPE = "float32"
"""The lm-eval cross-check compares the two scorers' logic, so neither is blurred by bf16 rounding."""


def checkpoint_parameters(folder: Path) -> int:
    """Parameters stored in a checkpoint's safetensors files (a tied LM head is stored, and counted, once)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open has no __iter__)
                total += math.prod(weights.get_slice(name).get_shape())
    return total


def equal_budget_ffn_size(original: Path, depth: Path) -> int:
    """The MLP width whose cut in every block removes as many parameters as the depth cut did (gated MLP)."""
    config = json.loads((original / "config.json").read_text())
    removed = checkpoint_parameters(original) - checkpoint_parameters(depth)
    per_neuron = config["num_hidden_layers"] * 3 * config["hidden_size"]  # a row of gate and up, a column of down
    return config["intermediate_size"] - round(removed / per_neuron)


def options_hash(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def eval_settings(step: dict) -> dict:
    """An eval step's settings without its task files and output folder (where they lie, not what they hold)."""
    return {name: value for name, value in step["eval"].items() if name not in ("tasks", "output")}


def training_digest(data: Path) -> str:
    """Training data by the conversations the train stage reads from it, whatever else its files record."""
    from sdd_data.train.data import load_training_rows

    conversations = load_training_rows(str(data)).conversations
    return hashlib.sha256(json.dumps(conversations, sort_keys=True).encode()).hexdigest()[:16]


def content_digest(path: Path) -> str:
    """What a step's input holds, not how it is stored: a checkpoint by its weights, a stage's dataset output by
    the conversations it trains, a plain file by its bytes."""
    if path.is_dir() and any(path.glob("*.safetensors")):
        return weights_digest(path)
    if path.is_dir():
        return training_digest(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class ArmPlan(NamedTuple):
    """How one trained arm trains: its recipe, its data for a seed, its teacher (distillation only), a learning
    rate in place of the preset's, and recipe keys in place of the preset's `training`."""

    recipe: str
    data: Callable[[int], Path]
    teacher: str | None = None
    learning_rate: float | None = None
    training: dict | None = None


class Experiment:
    """One preset's arms: pipeline files under `work`, finished evaluations under `arms`."""

    def __init__(self, preset: Preset, work: Path, data_dir: Path, hub_ids: dict[str, str]):
        self.preset, self.work, self.data_dir, self.hub_ids = preset, work, data_dir, hub_ids
        self.record: dict = {"preset": preset.to_dict()}
        self.unusual_rates: dict[str, float] = {}
        """Tuned arms whose chosen learning rate is not their usual one, with that rate."""
        self.results_dir = HERE

    @property
    def arms_dir(self) -> Path:
        """Finished arms' evaluations, kept beside the results (committed with them)."""
        return self.results_dir / "arms" / self.preset.name

    def keep(self, name: str, values: dict) -> None:
        """Record a shared step's outcome beside the arms (the cut, the distillation), committed with them."""
        self.arms_dir.mkdir(parents=True, exist_ok=True)
        (self.arms_dir / f"{name}.json").write_text(json.dumps(values, indent=2) + "\n")

    def kept(self, name: str, key: str) -> dict | None:
        """What `keep` (or an arm) stored under `name` beside the arms, when it was stored under `key`; else None."""
        path = self.arms_dir / f"{name}.json"
        stored = json.loads(path.read_text()) if path.is_file() else None
        return stored if stored is not None and stored.get("key") == key else None

    def portable_hash(self, values: dict) -> str:
        """`options_hash` of `values` with the work, data and checkout folders named, not spelled out."""
        text = json.dumps(values, sort_keys=True, default=str)
        for folder, label in ((self.work, "<work>"), (self.data_dir, "<data>"), (REPO, "<repo>")):
            text = text.replace(str(folder.resolve()), label).replace(str(folder), label)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- running stages -------------------------------------------------------------------------

    def pipeline(self, name: str, steps: list[dict]) -> None:
        """Run (or resume) one pipeline file of steps through `sdd-data run`."""
        path = self.work / "pipelines" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"steps": steps}, sort_keys=False))
        print(f"--- {name}", flush=True)
        result = subprocess.run([sys.executable, "-m", "sdd_data.cli", "run", "--pipeline", str(path)], cwd=REPO)
        if result.returncode != 0:
            raise SystemExit(f"pipeline {path} failed (exit {result.returncode}); fix it and rerun to resume")

    def width_cuts(self, depth: Path, train: Path, nll_task: str) -> dict[str, Path]:
        """Each width method cut to the depth cut's parameter count (MLP neurons only); records size and NLL."""
        from sdd_data.models import resolve_model

        original = Path(resolve_model(self.preset.model).path)
        ffn_size = equal_budget_ffn_size(original, depth)
        cuts, summary = {}, {}
        for method in self.preset.width_methods:
            name = f"width-{method}-{ffn_size}"
            folder, nll_folder = self.work / "prune" / name, self.work / "prune" / f"{name}-nll"
            prune = {"model": self.preset.model, "method": method, "ffn_size": ffn_size,
                     "calibration_data": str(train), **self.preset.width_prune, "output": str(folder)}  # fmt: skip
            self.pipeline(name, [{"prune": prune}, self.eval_step(name, str(folder), [nll_task], nll_folder)])
            summary[method] = {"ffn_size": ffn_size, "parameters": checkpoint_parameters(folder),
                               "heldout_nll": self.nll(nll_folder)}  # fmt: skip
            cuts[method] = folder
        self.record["width_pruning"] = {
            "original_parameters": checkpoint_parameters(original),
            "depth_parameters": checkpoint_parameters(depth),
            "cuts": summary,
        }
        self.keep("width_pruning", self.record["width_pruning"])
        return cuts

    def decode_speed(self, models: dict[str, Path], prompts: Path) -> dict:
        """Greedy decode tokens/s of each model, cached by content: one batch of held-out prompts, every row made
        to generate exactly SPEED_TOKENS tokens, so that models whose answers end sooner are not favoured."""
        rows = [json.loads(line) for line in prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = rows[:SPEED_PROMPTS]
        settings = {"how": "transformers generate, fixed length", "dtype": self.preset.dtype, "batch": len(rows),
                    "new_tokens": SPEED_TOKENS, "repeats": SPEED_REPEATS, "reported": "median"}  # fmt: skip
        key = options_hash({**settings, **{name: content_digest(path) for name, path in models.items()}})
        cached = self.kept("decode_speed", key)
        if cached is not None:
            self.record["decode_speed"] = cached
            return cached
        import torch

        from sdd_data.data.records import user_prompt
        from sdd_data.models import load_causal_lm, load_tokenizer, resolve_device

        turns = [[{"role": "user", "content": user_prompt(row["instruction"], row["input"])}] for row in rows]
        loaded = {}
        for name, path in models.items():
            tokenizer = load_tokenizer(path)
            tokenizer.padding_side = "left"
            model = load_causal_lm(path, dtype=self.preset.dtype, device=resolve_device("auto"))
            batch = tokenizer.apply_chat_template(turns, add_generation_prompt=True, padding=True,
                                                  return_tensors="pt", return_dict=True).to(model.device)  # fmt: skip
            fixed = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
            with torch.inference_mode():
                model.generate(**batch, min_new_tokens=4, max_new_tokens=4, **fixed)  # warm-up
            loaded[name] = model, batch, fixed
        runs: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(SPEED_REPEATS):  # round after round, so that a slow spell of the machine hits every model
            for name, (model, batch, fixed) in loaded.items():
                with torch.inference_mode():
                    started = time.perf_counter()
                    model.generate(**batch, min_new_tokens=SPEED_TOKENS, max_new_tokens=SPEED_TOKENS, **fixed)
                    runs[name].append(round(time.perf_counter() - started, 3))
        tokens = len(rows) * SPEED_TOKENS
        speeds = {}
        for name, seconds in runs.items():
            median = statistics.median(seconds)
            speeds[name] = {"tokens": tokens, "seconds": median, "runs": seconds, "tokens_per_second": tokens / median}
            print(f"decode speed of {name}: {tokens / median:.1f} tokens/s (median of {len(seconds)})", flush=True)
        del loaded
        self.record["decode_speed"] = {"key": key, **settings, "models": speeds}
        self.keep("decode_speed", self.record["decode_speed"])
        return self.record["decode_speed"]

    def eval_step(self, name: str, model: str, tasks: list[str], output: Path) -> dict:
        return {"eval": {"models": f"{name}={model}", "tasks": ",".join(tasks), "limit": None,
                         "batch_size": self.preset.eval_batch_size, "mc_delimiter": MC_DELIMITER,
                         "dtype": self.preset.dtype, "output": str(output)}}  # fmt: skip

    # --- the shared inputs ----------------------------------------------------------------------

    def heldout_answers(self, prompts: Path) -> Path:
        """The original model's greedy answers to the held-out prompts (the distribution to preserve)."""
        path = self.work / "data" / "heldout_answers.jsonl"
        if path.is_file():
            return path
        from sdd_data.data.records import user_prompt
        from sdd_data.engines import DecodingConfig, EngineConfig, load_engine
        from sdd_data.models import resolve_model

        rows = [json.loads(line) for line in prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
        turns = [[{"role": "user", "content": user_prompt(row["instruction"], row["input"])}] for row in rows]
        engine = load_engine(
            self.preset.engine, resolve_model(self.preset.model).path, EngineConfig(dtype=self.preset.dtype)
        )
        try:
            rendered = [
                engine.tokenizer.apply_chat_template(t, tokenize=False, add_generation_prompt=True) for t in turns
            ]
            decoding = DecodingConfig(max_new_tokens=self.preset.max_new_tokens)
            generations = engine.generate(rendered, [0] * len(rendered), decoding)
        finally:
            engine.close()
        answered = [{"messages": [*t, {"role": "assistant", "content": g.text.strip()}]}
                    for t, g in zip(turns, generations) if g.text.strip()]  # fmt: skip
        return write_jsonl(path, answered)

    def choose_cut(self, train: Path, nll_task: str) -> Path:
        """Prune every candidate cut, score each on the held-out answers, keep the one the preset's rule picks.
        The choice is kept beside the arms by what it was made from: a fresh work folder cuts only the chosen one."""
        original = self.work / "eval" / "original-heldout"
        baseline_step = self.eval_step("original", self.preset.model, [nll_task], original)
        heldout = content_digest(Path(nll_task.split(":", 1)[1]))
        key = options_hash({"candidates": self.preset.prune_candidates, "limit": self.preset.max_nll_increase,
                            "calibration": content_digest(train), "nll": heldout,
                            "eval": eval_settings(baseline_step)})  # fmt: skip
        cached = self.kept("pruning", key)
        if cached is not None:
            self.record["pruning"] = cached
            chosen = cached["chosen"]
            return self.cut(train, chosen["method"], chosen["blocks"])
        self.pipeline("original-heldout", [baseline_step])
        baseline = self.nll(original)
        candidates = []
        for method, count in self.preset.prune_candidates:
            folder = self.cut(train, method, count, nll_task)
            record = json.loads((folder / "sdd_data_prune.json").read_text())
            nll = self.nll(folder.with_name(f"{folder.name}-nll"))
            candidates.append({"method": method, "blocks": count, "removed_blocks": record["removed_blocks"],
                               "heldout_nll": nll, "nll_increase": nll - baseline, "path": str(folder)})  # fmt: skip
        fitting = [c for c in candidates if c["nll_increase"] <= self.preset.max_nll_increase]
        if fitting:
            chosen = max(fitting, key=lambda c: (c["blocks"], -c["heldout_nll"]))
        else:  # every cut breaks the model more than allowed: take the gentlest
            chosen = min(candidates, key=lambda c: c["heldout_nll"])
        self.record["pruning"] = {
            "key": key,
            "original_heldout_nll": baseline,
            "max_nll_increase": self.preset.max_nll_increase,
            "candidates": candidates,
            "chosen": {key: value for key, value in chosen.items() if key != "path"},
        }
        self.keep("pruning", self.record["pruning"])
        print(
            f"cut: {chosen['method']} removing blocks {chosen['removed_blocks']} "
            f"(held-out NLL {chosen['heldout_nll']:.3f} vs {baseline:.3f})"
        )
        return Path(chosen["path"])

    def cut(self, train: Path, method: str, count: int, nll_task: str | None = None) -> Path:
        """Remove `count` blocks by `method` (calibrated on `train`); with `nll_task`, score the cut on it too."""
        name = f"prune-{method}-{count}"
        folder = self.work / "prune" / name
        prune = {"model": self.preset.model, "method": method, "blocks_to_remove": count,
                 "calibration_data": str(train), "output": str(folder)}  # fmt: skip
        steps = [{"prune": prune}]
        if nll_task is not None:
            steps.append(self.eval_step(name, str(folder), [nll_task], folder.with_name(f"{name}-nll")))
        self.pipeline(name, steps)
        return folder

    @staticmethod
    def nll(eval_folder: Path) -> float:
        report = json.loads((eval_folder / EVAL_RESULTS).read_text())
        (task,) = [task for task in report["tasks"].values() if not task["higher_is_better"]]
        return next(iter(task["scores"].values()))

    def distill(self, train: Path, eval_files: list[Path], teacher: Path | None = None, attempts: int = 1) -> Path:
        """The self-distilled training set: the original model rewrites every row (SDD). With `teacher` (the
        pruned model), the same rows rewritten by that weaker teacher instead, to measure what its strength is worth;
        with `attempts` above 1, rejected rewrites sampled again (the `sdd-yield` set)."""
        name = "sdd" if teacher is None else "sdd-pruned-teacher"
        name = "sdd-yield" if attempts > 1 else name
        folder = self.work / name
        options = {"data": str(train), "teacher": str(teacher or self.preset.model), "engine": self.preset.engine,
                   "max_new_tokens": self.preset.max_new_tokens, "dtype": self.preset.dtype,
                   "decontaminate": ",".join(map(str, eval_files)), "output": str(folder)}  # fmt: skip
        if attempts > 1:
            options.update(attempts=attempts, retry_temperature=self.preset.retry_temperature)
        self.pipeline("distill" if name == "sdd" else f"distill-{name}", [{"distill": options}])
        stats = json.loads((folder / STATS_FILE).read_text())
        summary = {key: stats[key] for key in ("rows_in", "rows_out", "decisions", "reasons_by_decision", "by_task")}
        summary["copies"] = stats.get("copies")
        if attempts > 1:
            summary["attempts"] = stats["attempts"]
            self.record["distill_yield"] = summary
            self.keep("distill_yield", summary)
            return folder
        if teacher is not None:
            self.record["distill_pruned_teacher"] = summary
            self.keep("distill_pruned_teacher", summary)
            return folder
        self.record["distill"] = summary
        self.record["decontamination"] = {"removed_rows": stats["reasons"].get("contaminated", 0),
                                          "against": [path.name for path in eval_files]}  # fmt: skip
        self.keep("distill", {"distill": self.record["distill"], "decontamination": self.record["decontamination"]})
        return folder

    def training_sets(self, distilled: Path) -> dict[str, Path]:
        """The data of each arm, from the distill run's kept rows: source responses, distilled ones, parts."""
        import pyarrow.parquet as pq

        rows = pq.read_table(distilled / DISTILLED_PARQUET).to_pylist()
        folder = self.work / "data"
        source = [{key: row[key] for key in ("id", "instruction", "input", "response", "task")} for row in rows]
        math = [{"messages": row["messages"]} for row in rows if row["task"] == "math"]
        general = [{"messages": row["messages"]} for row in rows if row["task"] != "math"]
        return {"sft": write_jsonl(folder / "sft.jsonl", source), "kd": folder / "sft.jsonl", "sdd": distilled,
                "sdd-math": write_jsonl(folder / "sdd_math.jsonl", math),
                "sdd-general": write_jsonl(folder / "sdd_general.jsonl", general)}  # fmt: skip

    def select(self, distilled: Path, pruned: Path, method: str, seed: int) -> Path:
        folder = self.work / "select" / f"{method}-{seed}"
        options = {"data": str(distilled), "pruned_model": str(pruned), "original_model": self.preset.model,
                   "method": method, "budget": self.preset.selection_budget, "seed": seed, "dtype": self.preset.dtype,
                   "output": str(folder)}  # fmt: skip
        self.pipeline(f"select-{method}-{seed}", [{"select": options}])
        return folder

    # --- arms ------------------------------------------------------------------------------------

    def arm_key(
        self, model_steps: list[dict], evaluation: dict, model: Path | str, tasks: list[str]
    ) -> tuple[str, dict[str, str]]:
        """What an arm's scores depend on, hashed: its steps, its evaluation and what their inputs hold (the
        digests are returned too), wherever the work folder and the checkout lie."""
        inputs = {
            f"{stage}.{option}": content_digest(Path(str(value)))
            for step in model_steps
            for stage, options in step.items()
            for option, value in options.items()
            if option in ("data", "model") and Path(str(value)).exists()
        }
        if not model_steps and Path(str(model)).exists():
            inputs["model"] = content_digest(Path(str(model)))
        inputs.update({task: content_digest(Path(task.split(":", 1)[1])) for task in tasks if ":" in task})
        return self.portable_hash({"steps": model_steps, "eval": evaluation, "inputs": inputs}), inputs

    def arm(self, arm: str, seed: int | None, model_steps: list[dict], model: Path | str, tasks: list[str]) -> dict:
        """Build one arm's model (steps), evaluate it, and keep the evaluation under `arms_dir` (cached)."""
        name = arm if seed is None else f"{arm}-s{seed}"
        output = self.work / "eval" / name
        evaluation = self.eval_step(name, str(model), tasks, output)
        key, inputs = self.arm_key(model_steps, evaluation, model, tasks)
        cached = self.kept(name, key)
        if cached is not None:
            return self.with_acceptance(cached, name, model, bool(model_steps))
        self.pipeline(name, [*model_steps, evaluation])
        report = json.loads((output / EVAL_RESULTS).read_text())
        entry = {"key": key, "inputs": inputs, "arm": arm, "seed": seed, "tasks": {}}
        for label, task in report["tasks"].items():
            entry["tasks"][label] = {"score": task["scores"][name], "higher_is_better": task["higher_is_better"],
                                     "items": task["item_scores"].get(name)}  # fmt: skip
        train_record = Path(str(model)) / TRAIN_RECORD
        if train_record.is_file():
            trained = json.loads(train_record.read_text())
            entry["training"] = {
                "rows": trained["rows"],
                "rows_over_max_length": trained.get("rows_over_max_length"),
                "steps": trained["metrics"].get("global_step"),
                "train_loss": trained["metrics"].get("train_loss"),
            }
        self.arms_dir.mkdir(parents=True, exist_ok=True)
        (self.arms_dir / f"{name}.json").write_text(json.dumps(entry) + "\n")
        return self.with_acceptance(entry, name, model, bool(model_steps))

    def with_acceptance(self, entry: dict, name: str, model: Path | str, trained: bool) -> dict:
        """The entry with its model's speculative-decoding acceptance as a draft for the original on the held-out
        prompts, for a trained arm of a reported seed: kept beside the arms under the arm's key, measured when it
        is not kept yet and the model is on disk (an arm reused from an earlier run has none to measure)."""
        prompts, answers = self.work / "data" / "heldout_prompts.jsonl", self.work / "data" / "heldout_answers.jsonl"
        output = self.work / "eval" / f"{name}-acceptance"
        if not trained or entry.get("seed") is None or entry["arm"].endswith("-dev") or not prompts.is_file():
            return entry
        step = {"eval": {"models": f"original={self.preset.model},{name}={model}", "tasks": f"nll:{answers}",
                         "limit": 1, "speculative": name, "speculative_prompts": str(prompts),
                         "speculative_limit": SPEED_PROMPTS, "speculative_max_new_tokens": SPEED_TOKENS,
                         "dtype": self.preset.dtype, "output": str(output)}}  # fmt: skip
        settings = {key: value for key, value in step["eval"].items() if key not in ("models", "tasks", "output")}
        key = self.portable_hash({"arm": entry["key"], "settings": settings, "prompts": content_digest(prompts)})
        kept = self.kept(f"{name}-acceptance", key)
        if kept is None and Path(str(model)).is_dir():
            self.pipeline(f"{name}-acceptance", [step])
            measured = json.loads((output / EVAL_RESULTS).read_text())
            kept = {"key": key, "arm_key": entry["key"], **measured["speculative"][name]}
            self.keep(f"{name}-acceptance", kept)
        return {**entry, "acceptance": kept} if kept else entry

    def arm_plans(
        self, data: dict[str, Path], distilled: Path, pruned: Path, train_rows: Path, decontaminate: list[Path]
    ) -> dict[str, ArmPlan]:
        """How each trained depth arm trains; the pruned-teacher set and the selections are made when first asked."""
        sft, kd = self.preset.sft_recipe, self.preset.kd_recipe
        plans = {
            "sft": ArmPlan(sft, lambda seed: data["sft"]),
            "sdd": ArmPlan(sft, lambda seed: data["sdd"]),
            "kd": ArmPlan(kd, lambda seed: data["kd"], teacher=self.preset.model),
            "sdd-paser": ArmPlan(sft, lambda seed: self.select(distilled, pruned, "paser", seed)),
            "sdd-random": ArmPlan(sft, lambda seed: self.select(distilled, pruned, "random", seed)),
            "sdd-math": ArmPlan(sft, lambda seed: data["sdd-math"]),
            "sdd-general": ArmPlan(sft, lambda seed: data["sdd-general"]),
            "sdd-pruned-teacher": ArmPlan(sft, lambda seed: self.distill(train_rows, decontaminate, teacher=pruned)),
        }
        if self.preset.attempts > 1:
            yielded = lambda seed: self.distill(train_rows, decontaminate, attempts=self.preset.attempts)  # noqa: E731
            plans["sdd-yield"] = ArmPlan(sft, yielded)
        if self.preset.onpolicy_recipe is not None:
            # On-policy distillation reads only the prompts of its data: the source rows' prompts are the training
            # prompts, the same for every arm.
            training = dict(self.preset.onpolicy_training)
            plans["onpolicy"] = ArmPlan(
                self.preset.onpolicy_recipe, lambda seed: data["sft"], teacher=self.preset.model, training=training
            )
        if self.preset.high_learning_rate is not None:
            plans["sft-high-lr"] = plans["sft"]._replace(learning_rate=self.preset.high_learning_rate)
            plans["sdd-high-lr"] = plans["sdd"]._replace(learning_rate=self.preset.high_learning_rate)
        return plans

    def train_step(self, plan: ArmPlan, model: Path, output: Path, seed: int) -> dict:
        """The pipeline step that trains `model` as `plan` says, with `seed`, into `output`."""
        overrides = {**(self.preset.training if plan.training is None else plan.training), "seed": seed}
        if plan.learning_rate is not None:
            overrides["learning_rate"] = plan.learning_rate
        # The kd arms keep random batches: their first seeds ran before GKD could group by length, and every
        # seed of an arm trains the same way.
        if plan.teacher:
            overrides.pop("train_sampling_strategy", None)
        options = {"recipe": plan.recipe, "model": str(model), "data": str(plan.data(seed)), "output": str(output),
                   "overrides": overrides}  # fmt: skip
        if plan.teacher:
            options["teacher"] = plan.teacher
        return {"train": options}

    def run(self, only: set[str] | None) -> dict:
        """Every arm (or those in `only`), then the analysis; returns the results (empty with `only`)."""
        prepared = prepare_data(self.preset, self.data_dir, self.work, self.hub_ids)
        self.record["data"] = prepared.counts
        eval_files = list(prepared.eval_files.values())
        nll_task = f"nll:{self.heldout_answers(prepared.heldout_prompts)}"
        tasks = [*(f"mc:{path}" for path in eval_files), nll_task]
        gsm8k = self.gsm8k_gate()
        if gsm8k is not None:
            tasks.append(gsm8k)
        pruned = self.choose_cut(prepared.train, nll_task)
        wanted = lambda arm: only is None or arm in only  # noqa: E731
        entries = []
        if wanted("original"):
            entries.append(self.arm("original", None, [], self.preset.model, tasks))
        if wanted("pruned"):
            entries.append(self.arm("pruned", None, [], pruned, tasks))
        local_gsm8k = [Path(gsm8k.split(":", 1)[1])] if gsm8k and ":" in gsm8k else []
        decontaminate = [*eval_files, *local_gsm8k]
        distilled = self.distill(prepared.train, decontaminate)
        data = self.training_sets(distilled)
        plans = self.arm_plans(data, distilled, pruned, prepared.train, decontaminate)
        # The width cuts are recovered as in round one, at the recipes' usual rate: tuning them too would train
        # all twelve again, and they compare cuts under one recovery, not recoveries.
        recoveries = {recovery: plans[recovery] for recovery in ("sdd", "kd")}
        if self.preset.learning_rate_grid:
            dev_tasks = [f"mc:{path}" for path in prepared.dev_files.values()]
            for arm in self.preset.tuned_arms:
                if arm in plans:
                    plans[arm] = plans[arm]._replace(learning_rate=self.tuned_rate(arm, plans[arm], pruned, dev_tasks))
            if "sdd-yield" in plans and "sdd-yield" not in self.preset.tuned_arms:  # trained as sdd: only data differ
                plans["sdd-yield"] = plans["sdd-yield"]._replace(learning_rate=plans["sdd"].learning_rate)
                if "sdd" in self.unusual_rates:
                    self.unusual_rates["sdd-yield"] = self.unusual_rates["sdd"]
        # Every seed of the main comparison first, then the selection arms, the merge and its parts, the weaker
        # teacher and the stronger recovery.
        stronger = ("sft-high-lr", "sdd-high-lr") if "sft-high-lr" in plans else ()
        round_two = tuple(arm for arm in ("sdd-yield", "onpolicy", "sdd-then-onpolicy") if arm in plans
                          or (arm == "sdd-then-onpolicy" and "onpolicy" in plans))  # fmt: skip
        groups = (("sft", "sdd", "kd"), round_two, ("sdd-paser", "sdd-random"), ("sdd-math", "sdd-general", "merged"),
                  ("sdd-pruned-teacher",), stronger)  # fmt: skip
        for group in groups:
            for seed in self.preset.seeds:
                for arm in group:
                    if arm == "merged":
                        if wanted("merged"):
                            entries.append(self.merged(seed, self.work / "models", pruned, data, tasks))
                    elif arm == "sdd-then-onpolicy":
                        if wanted(arm):
                            entries.append(self.sdd_then_onpolicy(seed, plans, pruned, tasks))
                    elif wanted(arm) or (arm in ("sdd-math", "sdd-general") and wanted("merged")):
                        output = self.model_folder(arm, seed)
                        step = self.train_step(plans[arm], pruned, output, seed)
                        entries.append(self.arm(arm, seed, [step], output, tasks))
        entries += self.width_arms(pruned, prepared, nll_task, tasks, recoveries, wanted)
        if only is not None:  # some arms only: not the experiment's results, so none are written
            print(f"ran {', '.join(sorted(only))}; results are written by a run of every arm")
            return {}
        self.lm_eval_check(eval_files)
        return write_results(self.preset, self.record, entries, self.results_dir)

    def gsm8k_gate(self) -> str | None:
        """The GSM8K task (the local test file, else the Hub's test split) when the original model's exact match
        on `gsm8k_gate_questions` of its questions reaches `gsm8k_floor`; None when it does not."""
        local = self.data_dir / "gsm8k" / "test.jsonl"
        task = f"gsm8k:{local}" if local.is_file() else "gsm8k"
        output = self.work / "eval" / "gsm8k-gate"
        step = self.eval_step("original", self.preset.model, [task], output)
        step["eval"]["limit"] = self.preset.gsm8k_gate_questions
        # Kept beside the arms by what it measures (not where), so a fresh checkout does not answer it again.
        key = options_hash({**eval_settings(step), "task": content_digest(local) if local.is_file() else task})
        gate = self.kept("gsm8k_gate", key)
        if gate is None:
            self.pipeline("gsm8k-gate", [step])
            (result,) = json.loads((output / EVAL_RESULTS).read_text())["tasks"].values()
            exact = result["scores"]["original"]
            gate = {"key": key, "questions": result["rows"], "exact_match": exact, "floor": self.preset.gsm8k_floor,
                    "included": exact >= self.preset.gsm8k_floor}  # fmt: skip
        self.record["gsm8k_gate"] = gate
        self.keep("gsm8k_gate", gate)
        verdict = "in" if gate["included"] else "left out"
        print(f"GSM8K: the original answers {100 * gate['exact_match']:.1f}% exactly: {verdict}")
        return task if gate["included"] else None

    def lm_eval_check(self, eval_files: list[Path]) -> dict:
        """The original model on every multiple-choice item, scored by the built-in scorer and by
        lm-evaluation-harness (a local task YAML per file, through its include path), both in fp32. Kept beside
        the arms under the items, the settings and lm-eval's version, so a fresh checkout does not run it again."""
        output = self.work / "eval" / "lm-eval-check"
        tasks = [f"{kind}:{path}" for path in eval_files for kind in ("mc", "lm-eval-mc")]
        step = self.eval_step("original", self.preset.model, tasks, output)
        step["eval"]["dtype"] = LM_EVAL_CHECK_DTYPE
        key = options_hash({**eval_settings(step), "items": {path.stem: content_digest(path) for path in eval_files},
                            "lm_eval": importlib.metadata.version("lm_eval")})  # fmt: skip
        check = self.kept("lm_eval_check", key)
        if check is None:
            self.pipeline("lm-eval-check", [step])
            report = json.loads((output / EVAL_RESULTS).read_text())
            check = {"key": key, "model": "original", "dtype": LM_EVAL_CHECK_DTYPE, "tasks": {}}
            for path in eval_files:
                ours, theirs = report["tasks"][f"mc:{path.stem}"], report["tasks"][f"lm-eval-mc:{path.stem}"]
                items = ours["item_scores"]["original"], theirs["item_scores"]["original"]
                check["tasks"][path.stem] = {"items": len(items[0]), "built_in": ours["scores"]["original"],
                                             "lm_eval": theirs["scores"]["original"],
                                             "items_agreeing": sum(a == b for a, b in zip(*items))}  # fmt: skip
        self.record["lm_eval_check"] = check
        self.keep("lm_eval_check", check)
        return check

    def width_arms(
        self, pruned: Path, prepared, nll_task: str, tasks: list[str], recoveries: dict[str, ArmPlan], wanted
    ) -> list[dict]:
        """The width cuts, unrecovered and recovered as the depth cut's arms named in `recoveries` are, for every
        seed (after the depth arms)."""
        names = [f"{method}{suffix}" for method in self.preset.width_methods for suffix in ("", "-sdd", "-kd")]
        if not any(wanted(name) for name in names):
            return []
        cuts = self.width_cuts(pruned, prepared.train, nll_task)
        from sdd_data.models import resolve_model

        original = Path(resolve_model(self.preset.model).path)
        self.decode_speed({"original": original, "depth": pruned, **cuts}, prepared.heldout_prompts)
        entries = [self.arm(method, None, [], cut, tasks) for method, cut in cuts.items() if wanted(method)]
        for seed in self.preset.seeds:
            for method, cut in cuts.items():
                for recovery, plan in recoveries.items():
                    arm = f"{method}-{recovery}"
                    if wanted(arm):
                        output = self.work / "models" / f"{arm}-s{seed}"
                        step = self.train_step(plan, cut, output, seed)
                        entries.append(self.arm(arm, seed, [step], output, tasks))
        return entries

    def tuned_rate(self, arm: str, plan: ArmPlan, pruned: Path, dev_tasks: list[str]) -> float:
        """The grid's learning rate with the best average dev-split accuracy for `arm`, seed 0 (the lowest rate on a
        tie); every rate's score goes into the record. The run at the arm's usual rate is its seed-0 model. While the
        best rate is the largest tried, twice it is tried too, up to `grid_extensions` times."""
        usual = (self.preset.training if plan.training is None else plan.training).get("learning_rate")
        rates, scores = list(self.preset.learning_rate_grid), {}
        while rates:
            rate = rates.pop(0)
            output = self.model_folder(arm, 0, None if rate == usual else rate)
            step = self.train_step(plan._replace(learning_rate=rate), pruned, output, 0)
            entry = self.arm(f"{arm}-lr{rate:g}-dev", 0, [step], output, dev_tasks)
            ranked = [task["score"] for task in entry["tasks"].values() if task["higher_is_better"]]
            scores[rate] = sum(ranked) / len(ranked)
            extended = len(scores) - len(self.preset.learning_rate_grid)
            if not rates and extended < self.preset.grid_extensions and max(scores, key=scores.__getitem__) == rate:
                rates.append(2 * rate)
        chosen = max(sorted(scores), key=lambda rate: scores[rate])
        if chosen != usual:
            self.unusual_rates[arm] = chosen
        grid = self.record.setdefault("learning_rate_grid", {})
        grid[arm] = {"dev_average": {f"{rate:g}": score for rate, score in scores.items()}, "chosen": chosen}
        print(f"{arm}: learning rate {chosen:g} (dev accuracy {100 * scores[chosen]:.2f}%)", flush=True)
        return chosen

    def model_folder(self, arm: str, seed: int, rate: float | None = None) -> Path:
        """Where an arm's model of a seed goes: `<arm>-s<seed>` at its usual learning rate, `<arm>-lr<rate>-s<seed>`
        at another (`rate`, or the rate its tuning chose), so the grid's seed-0 run at the chosen rate is the
        arm's seed-0 model and no folder is trained twice under different options."""
        rate = rate if rate is not None else self.unusual_rates.get(arm)
        return self.work / "models" / (f"{arm}-s{seed}" if rate is None else f"{arm}-lr{rate:g}-s{seed}")

    def sdd_then_onpolicy(self, seed: int, plans: dict[str, ArmPlan], pruned: Path, tasks: list[str]) -> dict:
        """Two phases: the sdd arm's model of this seed (trained again only if it is missing), then on-policy
        distillation from the original, starting from it."""
        first, output = self.model_folder("sdd", seed), self.model_folder("sdd-then-onpolicy", seed)
        steps = [
            self.train_step(plans["sdd"], pruned, first, seed),
            self.train_step(plans["onpolicy"], first, output, seed),
        ]
        return self.arm("sdd-then-onpolicy", seed, steps, output, tasks)

    def merged(self, seed: int, models: Path, pruned: Path, data: dict[str, Path], tasks: list[str]) -> dict:
        parts = [models / f"sdd-math-s{seed}", models / f"sdd-general-s{seed}"]
        recipe = {"merge_method": "slerp", "base_model": str(parts[0]),
                  "models": [{"model": str(part)} for part in parts], "parameters": {"t": self.preset.merge_t},
                  "dtype": "float32"}  # fmt: skip
        recipe_path = self.work / "pipelines" / f"merge-s{seed}.yaml"
        recipe_path.parent.mkdir(parents=True, exist_ok=True)
        recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        output = models / f"merged-s{seed}"
        return self.arm(
            "merged", seed, [{"merge": {"merge_config": str(recipe_path), "output": str(output)}}], output, tasks
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the recovery experiment (see the module docstring).")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "recovery", help="where models and data go")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="local copies of the datasets")
    parser.add_argument(
        "--hub",
        action="append",
        default=[],
        metavar="SOURCE=ID",
        help="take a training source from the Hub instead, e.g. gsm8k=openai/gsm8k",
    )
    parser.add_argument("--only", help="comma-separated arms to run (others left as they are; writes no results)")
    parser.add_argument("--results-dir", type=Path, help="where the results files go (default: beside this file)")
    parser.add_argument(
        "--reanalyze",
        action="store_true",
        help="rewrite the results from the kept arms and the recorded shared steps, running nothing (after a change "
        "to the analysis)",
    )
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    if args.reanalyze:
        results = reanalyze(preset, args.results_dir or HERE)
        if args.results_dir is None:
            update_results_page(results)
        return
    hub_ids = dict(entry.split("=", 1) for entry in args.hub)
    experiment = Experiment(preset, args.work / preset.name, args.data_dir, hub_ids)
    if args.results_dir is not None:
        experiment.results_dir = args.results_dir
    results = experiment.run(set(args.only.split(",")) if args.only else None)
    if args.results_dir is None and not args.only:
        update_results_page(results)


def reanalyze(preset: Preset, results_dir: Path) -> dict:
    """The preset's results again from the arms kept under `results_dir` and the shared steps its results
    record, without building or evaluating anything."""
    previous = json.loads(results_files(results_dir, preset.name)["json"].read_text())
    stored = {
        path.stem: json.loads(path.read_text()) for path in sorted((results_dir / "arms" / preset.name).glob("*.json"))
    }
    entries = []
    for name, entry in stored.items():
        if entry.get("arm") not in ARM_ORDER:  # shared steps, acceptances, the learning-rate grid's dev runs
            continue
        acceptance = stored.get(f"{name}-acceptance")
        entries.append(
            {**entry, "acceptance": acceptance} if acceptance and acceptance["arm_key"] == entry["key"] else entry
        )
    return write_results(preset, {**previous["config"], "preset": preset.to_dict()}, entries, results_dir)


def update_results_page(results: dict) -> None:
    """Replace the preset's results section of docs/recovery.md (between its markers) with these results, or add
    one at the end for a preset that has none yet, and put the plot beside it."""
    preset = results["config"]["preset"]["name"]
    page = REPO / RESULTS_PAGE
    text = page.read_text()
    begin, end = results_markers(preset)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < 0:
        text = text.rstrip("\n") + f"\n\n## Results, {preset} preset\n\n{begin}\n{end}\n"
        start, stop = text.find(begin), text.find(end)
    shutil.copyfile(results_files(HERE, preset)["png"], page.parent / results_plot(preset))
    page.write_text(text[:start] + readme_section(results) + text[stop + len(end) :])


if __name__ == "__main__":
    main()
