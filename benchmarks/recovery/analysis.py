"""The experiment's numbers: per-arm scores over seeds, retention, paired-bootstrap intervals, and the files.

A comparison of arm A with arm B is the difference of their average accuracy over the multiple-choice
tasks. Its 95% interval comes from a paired bootstrap: each resample draws the evaluation items with
replacement (the same items for both arms, task by task) and each arm's seeds with replacement, once for
every task (a seed is one model, scored on every task), and the interval is the 2.5th to 97.5th percentile
of the resampled differences. An interval that spans zero reads "no clear difference".

The accuracy comparisons are one family (`COMPARISONS`, those both of whose arms ran): each gets a two-sided
bootstrap p-value (twice the share of resampled differences on the far side of zero), and Holm's step-down
correction at 5% says which differences survive testing them all.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
from presets import Preset

COMPARISONS = (
    ("sdd", "sft"), ("sdd", "kd"), ("sdd", "pruned"), ("sdd-paser", "sdd-random"), ("sdd-paser", "sdd"),
    ("sdd-random", "sdd"), ("merged", "sdd-math"), ("merged", "sdd-general"), ("merged", "sdd"), ("sft", "sdd"),
    ("sdd", "sdd-pruned-teacher"),  # what the teacher's strength is worth
    ("sdd-yield", "sdd"), ("sdd-yield", "sft"),  # a higher rewrite yield
    ("onpolicy", "sdd"), ("onpolicy", "kd"), ("sdd-then-onpolicy", "sdd"), ("sdd-then-onpolicy", "onpolicy"),
    ("sdd-high-lr", "sft-high-lr"), ("sft-high-lr", "sft"), ("sdd-high-lr", "sdd"),  # a stronger recovery
    # width against depth at the same parameter count, and sdd against kd on each cut
    ("minitron", "pruned"), ("sdmprune", "pruned"), ("sdmprune", "minitron"),
    ("minitron-sdd", "sdd"), ("sdmprune-sdd", "sdd"), ("minitron-kd", "kd"), ("sdmprune-kd", "kd"),
    ("minitron-sdd", "minitron-kd"), ("sdmprune-sdd", "sdmprune-kd"), ("sdmprune-sdd", "minitron-sdd"),
)  # fmt: skip
ARM_ORDER = (
    "original", "pruned", "sft", "sdd", "sdd-yield", "sdd-pruned-teacher", "sdd-paser", "sdd-random", "kd",
    "onpolicy", "sdd-then-onpolicy", "sdd-math",
    "sdd-general", "merged", "sft-high-lr", "sdd-high-lr",
    "minitron", "minitron-sdd", "minitron-kd", "sdmprune", "sdmprune-sdd", "sdmprune-kd",
)  # fmt: skip
RESULTS_PAGE = "docs/recovery.md"
"""The docs page that shows each preset's results, in a section between that preset's markers."""


def results_markers(preset: str) -> tuple[str, str]:
    """The markers around a preset's results section of the docs page."""
    return f"<!-- recovery-results {preset} -->", f"<!-- /recovery-results {preset} -->"


def results_plot(preset: str) -> str:
    """The name of a preset's plot beside the docs page."""
    return f"recovery-results-{preset}.png"


def results_files(folder: Path, preset: str) -> dict[str, Path]:
    """A preset's results.json, .md and .png: one set per preset, so that a GPU run adds its own beside the CPU
    one instead of replacing it."""
    return {kind: folder / f"results-{preset}.{kind}" for kind in ("json", "md", "png")}


def collect_arms(entries: list[dict]) -> dict[str, dict]:
    """Per arm: its seeds, each task's score per seed, the average over ranked tasks per seed, item scores."""
    arms: dict[str, dict] = {}
    for entry in sorted(entries, key=lambda entry: (ARM_ORDER.index(entry["arm"]), entry["seed"] or 0)):
        empty = {"seeds": [], "tasks": {}, "average": [], "distribution": {}, "items": {}, "nll_items": [],
                 "training": [], "acceptance": []}  # fmt: skip
        arm = arms.setdefault(entry["arm"], empty)
        arm["seeds"].append(entry["seed"])
        ranked = []
        for label, task in entry["tasks"].items():
            name = label.split(":", 1)[1].rsplit("/", 1)[-1].removesuffix(".jsonl").removeprefix("eval_")
            if task["higher_is_better"]:
                arm["tasks"].setdefault(name, []).append(task["score"])
                arm["items"].setdefault(name, []).append(task["items"])
                ranked.append(task["score"])
            else:
                arm["distribution"].setdefault("heldout_answer_nll", []).append(task["score"])
                arm["nll_items"].append(task["items"])
        arm["average"].append(sum(ranked) / len(ranked))
        if entry.get("training"):
            arm["training"].append(entry["training"])
        if entry.get("acceptance"):
            arm["acceptance"].append(entry["acceptance"]["acceptance_rate"])
    return arms


def bootstrap_differences(first: dict, second: dict, samples: int, seed: int = 0) -> np.ndarray:
    """Resampled differences of average accuracy (first − second): each resample draws each arm's seeds once for
    all tasks, and each task's items (the same for both arms), with replacement."""
    rng = np.random.default_rng(seed)
    tasks = sorted(set(first["items"]) & set(second["items"]))
    matrices = [(np.array(first["items"][task], dtype=float), np.array(second["items"][task], dtype=float))
                for task in tasks]  # fmt: skip
    seeds = matrices[0][0].shape[0], matrices[0][1].shape[0]
    differences = np.empty(samples)
    for sample in range(samples):
        seeds_a, seeds_b = rng.integers(seeds[0], size=seeds[0]), rng.integers(seeds[1], size=seeds[1])
        total = 0.0
        for a, b in matrices:
            items = rng.integers(a.shape[1], size=a.shape[1])
            total += a[seeds_a][:, items].mean() - b[seeds_b][:, items].mean()
        differences[sample] = total / len(matrices)
    return differences


def paired_bootstrap(first: dict, second: dict, samples: int, seed: int = 0) -> tuple[float, float, float, float]:
    """Difference of average accuracy (first − second), its 95% paired-bootstrap interval over items and seeds,
    and its two-sided bootstrap p-value."""
    tasks = sorted(set(first["items"]) & set(second["items"]))
    point = float(np.mean([np.mean(first["items"][task]) - np.mean(second["items"][task]) for task in tasks]))
    differences = bootstrap_differences(first, second, samples, seed)
    low, high = np.percentile(differences, [2.5, 97.5])
    p_value = min(1.0, 2 * min(float(np.mean(differences <= 0)), float(np.mean(differences >= 0))))
    return point, float(low), float(high), p_value


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`, in the order given."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def verdict(first: str, second: str, low: float, high: float) -> str:
    if low <= 0 <= high:
        return "no clear difference"
    return f"{first} better" if low > 0 else f"{second} better"


def compare(arms: dict[str, dict], first: str, second: str, samples: int) -> dict:
    """first − second: average accuracy and, where both have per-answer scores, held-out NLL (lower is closer to
    the original), each with its 95% paired-bootstrap interval and its reading."""
    point, low, high, p_value = paired_bootstrap(arms[first], arms[second], samples)
    comparison = {"first": first, "second": second, "difference": point, "ci95": [low, high], "p_value": p_value,
                  "verdict": verdict(first, second, low, high)}  # fmt: skip
    nll = [arms[first]["nll_items"], arms[second]["nll_items"]]
    if all(nll) and all(items is not None for seeds in nll for items in seeds):
        point, low, high, _ = paired_bootstrap({"items": {"nll": nll[0]}}, {"items": {"nll": nll[1]}}, samples)
        reading = "no clear difference" if low <= 0 <= high else f"{first if high < 0 else second} closer"
        comparison["heldout_nll"] = {"difference": point, "ci95": [low, high], "reading": reading}
    return comparison


RECOVERIES = ("sdd", "sdd-yield", "kd", "onpolicy", "sdd-then-onpolicy", "minitron-sdd", "minitron-kd", "sdmprune-sdd",
              "sdmprune-kd")  # fmt: skip
"""Each cut (depth, minitron, sdmprune) with each recovery, all at the same parameter count."""


def headline(arms: dict[str, dict], samples: int) -> dict:
    """The answers a reader looks for: sdd against plain SFT (at both learning rates), and the best cut + recovery
    against the next."""
    answers = {}
    for key, first, second in (("sdd_vs_sft", "sdd", "sft"), ("sdd_vs_sft_high_lr", "sdd-high-lr", "sft-high-lr")):
        if first in arms and second in arms:
            answers[key] = compare(arms, first, second, samples)
    ranked = sorted(
        (name for name in RECOVERIES if name in arms), key=lambda name: -statistics.mean(arms[name]["average"])
    )
    if len(ranked) > 1 and any(name not in ("sdd", "kd") for name in ranked):
        answers["best_recovery"] = compare(arms, ranked[0], ranked[1], samples)
    return answers


def build_results(preset: Preset, record: dict, entries: list[dict]) -> dict:
    """results.json's content: config, arms (scores per seed), retention, comparisons and the headline."""
    arms = collect_arms(entries)
    original = statistics.mean(arms["original"]["average"]) if "original" in arms else None
    comparisons = [
        compare(arms, first, second, preset.bootstrap_samples)
        for first, second in COMPARISONS
        if first in arms and second in arms
    ]
    for comparison, survives in zip(comparisons, holm([item["p_value"] for item in comparisons])):
        comparison["holm_survives"] = survives
    public = {
        name: {
            "seeds": arm["seeds"],
            "tasks": arm["tasks"],
            "average": arm["average"],
            "retention": [100 * value / original for value in arm["average"]] if original else None,
            "distribution": arm["distribution"],
            "training": arm["training"],
            "draft_acceptance": arm["acceptance"],
        }
        for name, arm in arms.items()
    }
    return {"config": record, "arms": public, "headline": headline(arms, preset.bootstrap_samples),
            "comparisons": comparisons}  # fmt: skip


def _mean_sd(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean = statistics.mean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def render_markdown(results: dict) -> str:
    """The results table and the comparisons, as Markdown (also the README's results section)."""
    arms = results["arms"]
    tasks = list(next(iter(arms.values()))["tasks"])
    config = results["config"]["preset"]
    lines = [
        f"Preset `{config['name']}`: {config['model']}, acc_norm (%) on {config['eval_items']} items per task "
        "(or the whole set), mean ± sd over seeds; retention = average / original average × 100; held-out NLL: "
        "the original model's own answers to prompts no arm trains on (nats per token, lower is closer).",
        "",
        *_headline_lines(results.get("headline", {}), config),
        "| arm | seeds | " + " | ".join(tasks) + " | average | retention % | held-out NLL | draft acceptance % |",
        "|---|---|" + "---|" * len(tasks) + "---|---|---|---|",
    ]
    for name, arm in arms.items():
        nll = arm["distribution"].get("heldout_answer_nll")
        acceptance = arm.get("draft_acceptance")
        lines.append(
            f"| {name} | {len(arm['seeds'])} | "
            + " | ".join(_mean_sd(arm["tasks"][task]) for task in tasks)
            + f" | {_mean_sd(arm['average'])} | {_mean_sd(arm['retention'], 1.0) if arm['retention'] else '-'}"
            + f" | {_mean_sd(nll, 1.0, 3) if nll else '-'} | {_mean_sd(acceptance) if acceptance else '-'} |"
        )
    lines += [
        "",
        "| comparison | accuracy difference (points) | 95% interval | reading | p | after Holm | held-out NLL "
        "difference | 95% interval | reading |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for item in results["comparisons"]:
        low, high = item["ci95"]
        nll = item.get("heldout_nll")
        nll_cells = (
            f"{nll['difference']:+.3f} | [{nll['ci95'][0]:+.3f}, {nll['ci95'][1]:+.3f}] | {nll['reading']}"
            if nll
            else "- | - | -"
        )
        holm_cell = "-" if "holm_survives" not in item else ("survives" if item["holm_survives"] else "does not")
        p_cell = f"{item['p_value']:.4f}" if "p_value" in item else "-"
        lines.append(
            f"| {item['first']} − {item['second']} | {100 * item['difference']:+.2f} | "
            f"[{100 * low:+.2f}, {100 * high:+.2f}] | {item['verdict']} | {p_cell} | {holm_cell} | {nll_cells} |"
        )
    notes = [_holm_line(results["comparisons"])] if results["comparisons"] else []
    pruning = results["config"].get("pruning")
    if pruning:
        chosen = pruning["chosen"]
        notes.append(
            f"Cut: {chosen['method']}, blocks {chosen['removed_blocks']} (held-out NLL "
            f"{chosen['heldout_nll']:.3f} against the original's {pruning['original_heldout_nll']:.3f})."
        )
    notes += _width_lines(results["config"])
    if config.get("high_learning_rate") and "sdd-high-lr" in arms:
        notes.append(
            f"`sft-high-lr` and `sdd-high-lr` train as `sft` and `sdd` do, at learning rate "
            f"{config['high_learning_rate']:g} instead of {config['training']['learning_rate']:g}."
        )
    notes += _grid_lines(results["config"].get("learning_rate_grid"), config)
    notes += _distill_lines(results["config"])
    notes += _training_lines(results["arms"], config["training"].get("max_length"))
    notes += _lm_eval_lines(results["config"].get("lm_eval_check"))
    notes += _gsm8k_lines(results["config"].get("gsm8k_gate"))
    removed = results["config"].get("decontamination", {}).get("removed_rows")
    if removed is not None:
        notes.append(f"Decontamination removed {removed} training rows sharing a 13-gram with an evaluation item.")
    lines += [part for note in notes for part in ("", note)]  # one paragraph each
    return "\n".join(lines) + "\n"


def _holm_line(comparisons: list[dict]) -> str:
    """Which accuracy differences survive Holm's correction over the whole family of comparisons."""
    if not all("holm_survives" in item for item in comparisons):
        return "p-values and Holm's correction were not computed for these results."
    surviving = [f"{item['first']} − {item['second']}" for item in comparisons if item["holm_survives"]]
    verb = "survives" if len(surviving) == 1 else "survive"
    return (
        f"The {len(comparisons)} accuracy comparisons are one family: p is a two-sided paired-bootstrap p-value, and "
        f"after Holm's step-down correction at 5% (family-wise) {len(surviving)} {verb}: "
        f"{', '.join(surviving) or 'none'}. An interval that excludes zero without surviving is one chance finding "
        "among many."
    )


def _difference(item: dict) -> str:
    low, high = item["ci95"]
    return f"{100 * item['difference']:+.2f} points, 95% interval [{100 * low:+.2f}, {100 * high:+.2f}]"


def _versus_sft_line(question: str, item: dict) -> str:
    """One sdd-against-sft answer: the accuracy reading and the held-out NLL reading, with their intervals."""
    reading = {f"{item['first']} better": "yes", f"{item['second']} better": "no, plain SFT does better"}.get(
        item["verdict"], "no clear difference"
    )
    text = f"{question} Accuracy: {reading} ({_difference(item)})"
    nll = item.get("heldout_nll")
    if nll:
        text += (
            f"; held-out NLL of the original's answers: {nll['reading']} ({nll['difference']:+.3f} nats, "
            f"[{nll['ci95'][0]:+.3f}, {nll['ci95'][1]:+.3f}])"
        )
    return text + "."


def _headline_lines(answers: dict, config: dict) -> list[str]:
    """The headline answers in words, each with its interval."""
    questions = {"sdd_vs_sft": "**Does self-distilled data beat plain SFT here?**"}
    if config.get("high_learning_rate"):
        rates = config["high_learning_rate"], config["training"]["learning_rate"]
        questions["sdd_vs_sft_high_lr"] = (
            f"**And when both train at learning rate {rates[0]:g} instead of {rates[1]:g}?**"
        )
    lines = [_versus_sft_line(question, answers[key]) for key, question in questions.items() if key in answers]
    if "best_recovery" in answers:
        item = answers["best_recovery"]
        lines.append(
            f"**Best cut and recovery at the depth cut's size** (sdd and kd recover the depth cut): {item['first']}, "
            f"against the next best {item['second']}: {_difference(item)}, {item['verdict']}."
        )
    return [part for line in lines for part in (line, "")]


def _width_lines(config: dict) -> list[str]:
    """The width cuts' size and held-out NLL beside the depth cut, and every cut's decode speed."""
    width, speed = config.get("width_pruning"), config.get("decode_speed")
    lines = []
    if width:
        cuts = ", ".join(
            f"{method} (MLP width {cut['ffn_size']}, {cut['parameters'] / 1e6:.1f}M parameters, held-out NLL "
            f"{cut['heldout_nll']:.3f})"
            for method, cut in width["cuts"].items()
        )
        lines.append(
            f"Width cuts at the depth cut's budget ({width['depth_parameters'] / 1e6:.1f}M of "
            f"{width['original_parameters'] / 1e6:.1f}M parameters): {cuts}."
        )
    if speed:
        models = speed["models"]
        base = models["original"]["tokens_per_second"]
        listed = ", ".join(f"{name} {model['tokens_per_second']:.1f} ({model['tokens_per_second'] / base:.2f}×)"
                           for name, model in models.items())  # fmt: skip
        lines.append(
            f"Greedy decode tokens/s ({speed['how']}, a batch of {speed['batch']} held-out prompts, "
            f"{speed['new_tokens']} new tokens each, dtype {speed['dtype']}, {_speed_runs(speed)} on this machine): "
            f"{listed}."
        )
    return lines


def _grid_lines(grid: dict | None, config: dict) -> list[str]:
    """The learning rate each tuned arm trains at, and the dev-split accuracy of every rate of the grid."""
    if not grid:
        return []
    arms = "; ".join(
        f"{arm}: " + ", ".join(f"{rate} {100 * score:.2f}" + (" (chosen)" if float(rate) == tuned["chosen"] else "")
                               for rate, score in tuned["dev_average"].items())
        for arm, tuned in grid.items()
    )  # fmt: skip
    return [
        f"Learning rates were chosen per arm on seed 0 by the average accuracy on a dev split ({config['dev_items']} "
        f"items per task, disjoint from the reported ones), then every seed trained at that rate. Dev accuracy (%) "
        f"by rate: {arms}."
    ]


def _speed_runs(speed: dict) -> str:
    """How the decode speed was measured: one run (older results) or the median of several."""
    return f"median of {speed['repeats']} runs" if speed.get("repeats", 1) > 1 else "one run"


def _distill_lines(config: dict) -> list[str]:
    """How many rows keep each teacher's rewrite, and why the others fell back to the source response or were
    dropped."""
    teachers = (("distill", "the original"), ("distill_pruned_teacher", "the pruned model (`sdd-pruned-teacher`)"))
    outcomes = (("original", "fall back to the source response"), ("dropped", "are dropped"))
    lines = []
    for key, teacher in teachers:
        summary = config.get(key)
        if not summary:
            continue
        parts = [f"{summary['decisions'].get('rewrite', 0)} of {summary['rows_in']} rows keep the rewrite"]
        for decision, outcome in outcomes:
            reasons = summary["reasons_by_decision"].get(decision)
            if reasons:
                why = ", ".join(f"{reason.replace('_', ' ')} {count}" for reason, count in reasons.items())
                parts.append(f"{sum(reasons.values())} {outcome} ({why})")
        lines.append(f"Distillation, teacher {teacher}: {'; '.join(parts)}.")
    return lines


def _training_lines(arms: dict, max_length: object) -> list[str]:
    """Rows each trained arm saw, and how many were longer than max_length (TRL truncates them)."""

    def counts(records: list[dict], key: str) -> str:
        values = sorted({record.get(key) for record in records}, key=str)
        return "/".join(str(value) for value in values)

    trained = {name: arm["training"] for name, arm in arms.items() if arm.get("training")}
    if not trained:
        return []
    listed = ", ".join(
        f"{name} {counts(records, 'rows')} ({counts(records, 'rows_over_max_length')})"
        for name, records in trained.items()
    )
    return [f"Training rows per arm (rows longer than max_length {max_length}, which TRL truncates): {listed}."]


def _lm_eval_lines(check: dict | None) -> list[str]:
    """The built-in scorer against lm-evaluation-harness on the same items."""
    if not check:
        return []
    listed = ", ".join(
        f"{task} {100 * scores['built_in']:.1f} vs {100 * scores['lm_eval']:.1f} "
        f"({scores['items_agreeing']}/{scores['items']} items agree)"
        for task, scores in check["tasks"].items()
    )
    return [
        f"The same items through lm-evaluation-harness (local task YAMLs, {check['model']} model, "
        f"{check['dtype']}), built-in scorer vs lm-eval acc_norm: {listed}."
    ]


def _gsm8k_lines(gate: dict | None) -> list[str]:
    """Whether GSM8K is among the tasks, and the measurement that decided it."""
    if not gate:
        return []
    decision = "it is one of the tasks" if gate["included"] else "too few to tell arms apart, so it is left out"
    return [
        f"GSM8K: the original model answered {100 * gate['exact_match']:.1f}% of {gate['questions']} test questions "
        f"exactly (greedy, zero-shot; the floor is {100 * gate['floor']:.0f}%): {decision}."
    ]


def plot(results: dict, path: Path) -> None:
    """Each arm's average accuracy and held-out NLL, one row per arm: a dot per seed and a bar at the mean, with
    the original's (dashed) and the untrained cut's (dotted) values as lines (sdd-trained arms in blue)."""
    from matplotlib.figure import Figure

    arms = results["arms"]
    names = list(arms)
    figure = Figure(figsize=(10, 1.2 + 0.28 * len(names)), dpi=120)
    accuracy, distance = figure.subplots(1, 2, sharey=True)
    panels = (
        (accuracy, lambda arm: [100 * value for value in arm["average"]], "average acc_norm (%), higher is better"),
        (distance, lambda arm: arm["distribution"].get("heldout_answer_nll") or [],
         "held-out NLL of the original's answers, lower is closer"),
    )  # fmt: skip
    for axes, values_of, title in panels:
        for row, name in enumerate(names):
            values = values_of(arms[name])
            if not values:
                continue
            color = "tab:blue" if "sdd" in name.split("-") else "tab:gray"
            axes.plot([statistics.mean(values)] * 2, [row - 0.3, row + 0.3], color=color, linewidth=3)
            axes.scatter(values, [row] * len(values), color="black", s=10, zorder=3)
        for reference, style in (("original", "--"), ("pruned", ":")):
            values = values_of(arms[reference]) if reference in arms else []
            if values:
                axes.axvline(statistics.mean(values), color="black", linestyle=style, linewidth=1, label=reference)
        axes.set_title(title, fontsize=10)
        axes.grid(axis="x", alpha=0.3)
    accuracy.set_yticks(range(len(names)), names)
    accuracy.invert_yaxis()
    accuracy.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")


def write_results(preset: Preset, record: dict, entries: list[dict], folder: Path) -> dict:
    """The preset's results files (`results_files`) in `folder`."""
    results = build_results(preset, record, entries)
    files = results_files(folder, preset.name)
    folder.mkdir(parents=True, exist_ok=True)
    files["json"].write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    files["md"].write_text(markdown)
    plot(results, files["png"])
    print(markdown)
    return results


def readme_section(results: dict) -> str:
    """A preset's results block of docs/recovery.md, between its markers: the command, the table and the plot."""
    preset = results["config"]["preset"]["name"]
    begin, end = results_markers(preset)
    command = f"python benchmarks/recovery/run.py --preset {preset}"
    table = render_markdown(results)
    return f"{begin}\n```bash\n{command}\n```\n\n{table}\n![recovery results]({results_plot(preset)})\n{end}"
