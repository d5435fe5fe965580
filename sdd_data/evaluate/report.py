"""The evaluation report: scores per task and model, retention against the baseline, table, JSON and bar chart.

Retention of a model = its score / the baseline's score × 100, per task; on the average row it is
mean(model scores) / mean(baseline scores) × 100, the recovery figure of the SDD paper. Scores where lower is
better (a negative log-likelihood) are reported as they are, outside the average, the retention and the chart.
"""

from __future__ import annotations

from pathlib import Path

from sdd_data.artifacts import EVAL_PLOT, EVAL_RESULTS
from sdd_data.errors import require
from sdd_data.evaluate.task_base import TaskResult
from sdd_data.output_folder import write_atomically, write_json


def retention(score: float, baseline: float) -> float | None:
    """score / baseline × 100, or None when the baseline scored 0."""
    return score / baseline * 100.0 if baseline else None


def build_report(
    models: dict[str, dict],
    baseline: str,
    results: dict[str, dict[str, TaskResult]],
    speculative: dict[str, dict] | None = None,
) -> dict:
    """The JSON-ready report from every model's TaskResult per task label (task order kept)."""
    names = list(models)
    tasks = {
        label: {
            "metric": next(iter(by_model.values())).metric,
            "rows": next(iter(by_model.values())).rows,
            "scores": {name: by_model[name].score for name in names},
            "metrics": {name: by_model[name].metrics for name in names},
            "higher_is_better": next(iter(by_model.values())).higher_is_better,
            "item_scores": {name: by_model[name].item_scores for name in names if by_model[name].item_scores},
        }
        for label, by_model in results.items()
    }
    ranked = {label: task for label, task in tasks.items() if task["higher_is_better"]}
    average = {name: sum(task["scores"][name] for task in ranked.values()) / max(len(ranked), 1) for name in names}
    retained = {
        name: {
            **{
                label: retention(task["scores"][name], task["scores"][baseline]) if task["higher_is_better"] else None
                for label, task in tasks.items()
            },
            "average": retention(average[name], average[baseline]),
        }
        for name in names
        if name != baseline
    }
    return {
        "models": models,
        "baseline": baseline,
        "tasks": tasks,
        "average": average,
        "retention": retained,
        "speculative": speculative or {},
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _score(task: dict, name: str) -> str:
    """A score in % (higher is better), or as it is (a negative log-likelihood)."""
    score = task["scores"][name]
    return _percent(100 * score) if task["higher_is_better"] else f"{score:.3f}"


def format_table(report: dict) -> str:
    """Rows = tasks and their average, columns = model scores (in %) and each model's retention (in %)."""
    names = list(report["models"])
    baseline = report["baseline"]
    header = ["task (metric)", *names, *(f"{name}/{baseline} %" for name in report["retention"])]
    rows = [
        [
            f"{label} ({task['metric']}{'' if task['higher_is_better'] else ', lower is better'})",
            *(_score(task, name) for name in names),
            *(_percent(report["retention"][name][label]) for name in report["retention"]),
        ]
        for label, task in report["tasks"].items()
    ]
    if any(task["higher_is_better"] for task in report["tasks"].values()):
        rows.append(
            [
                "average",
                *(_percent(100 * report["average"][name]) for name in names),
                *(_percent(report["retention"][name]["average"]) for name in report["retention"]),
            ]
        )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for draft, measured in report["speculative"].items():
        lines.append(
            f"speculative decoding, draft {draft} for {measured['target']} (γ={measured['draft_tokens']}): "
            f"acceptance α = {100 * measured['acceptance_rate']:.1f}%, mean accepted length "
            f"τ = {measured['mean_accepted_length']:.2f} tokens per target forward "
            f"({measured['accepted']}/{measured['proposed']} draft tokens accepted)"
        )
    return "\n".join(lines)


def plot_report(report: dict, path: Path) -> None:
    """A grouped bar chart of every model's score (in %) per task and on average, written as PNG."""
    require("matplotlib", "eval")
    from matplotlib.figure import Figure

    names = list(report["models"])
    ranked = {label: task for label, task in report["tasks"].items() if task["higher_is_better"]}
    labels = [*ranked, "average"]
    values = {
        name: [100 * task["scores"][name] for task in ranked.values()] + [100 * report["average"][name]]
        for name in names
    }
    figure = Figure(figsize=(max(6.0, 1.4 * len(labels) * max(1, len(names)) / 2), 4.5), dpi=120)
    axes = figure.subplots()
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        positions = [index + (offset - (len(names) - 1) / 2) * width for index in range(len(labels))]
        axes.bar(positions, values[name], width, label=name)
    axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    axes.set_ylabel("score (%)")
    retained = ", ".join(f"{name} {_percent(by_task['average'])}%" for name, by_task in report["retention"].items())
    axes.set_title(f"retention vs {report['baseline']}: {retained}" if retained else "scores")
    axes.legend()
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))


def write_report(report: dict, output: Path) -> None:
    """results.json and results.png in `output`, each replaced in one step."""
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / EVAL_RESULTS, report)
    plot_report(report, output / EVAL_PLOT)
