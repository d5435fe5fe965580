"""The eval view: scores per task and model, retention against the baseline, speculative-decoding acceptance."""

from __future__ import annotations

from sdd_data import artifacts
from sdd_data.data.stage_data import read_json_object
from sdd_data.inspect import charts
from sdd_data.inspect.html_parts import InspectView, View, ViewOptions, cell, facts, section, table


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def eval_view(output: artifacts.StageOutput, options: ViewOptions) -> View:
    """The page of an eval folder (results.json)."""
    folder = output.folder
    results = read_json_object(folder / artifacts.EVAL_RESULTS)
    models = list(results.get("models") or {})
    baseline = results.get("baseline")
    tasks = results.get("tasks") or {}
    retention = results.get("retention") or {}
    speculative = results.get("speculative") or {}
    headers = ["task (metric)", "rows", *models, *(f"{name}/{baseline} %" for name in retention)]
    rows = []
    for label, task in tasks.items():
        scores = task.get("scores") or {}
        better = task.get("higher_is_better", True)
        rows.append(
            [
                cell(f"{label} ({task.get('metric')}{'' if better else ', lower is better'})"),
                cell(task.get("rows")),
                *(
                    cell(_percent(scores.get(name)) if better else scores.get(name), f"scores.{label}.{name}")
                    for name in models
                ),
                *(cell(_rounded(retention[name].get(label)), f"retention.{label}.{name}") for name in retention),
            ]
        )
    ranked = {label: task for label, task in tasks.items() if task.get("higher_is_better", True)}
    average = results.get("average") or {}
    if ranked:
        rows.append(
            [
                cell("average"),
                cell(None),
                *(cell(_percent(average.get(name)), f"scores.average.{name}") for name in models),
                *(cell(_rounded(retention[name].get("average")), f"retention.average.{name}") for name in retention),
            ]
        )
    summary = [
        section(
            "Models",
            facts(
                [(name, _described(results["models"][name]), None) for name in models] + [("baseline", baseline, None)]
            ),
        ),
        section("Scores (%) and retention against the baseline (%)", table(headers, rows), wide=True),
    ]
    chart_list = []
    if ranked:
        labels = [*ranked, "average"]
        chart_list.append(
            charts.grouped_bars(
                "Score per task and model (%)",
                labels,
                {
                    name: [100 * (task["scores"].get(name) or 0) for task in ranked.values()]
                    + [100 * (average.get(name) or 0)]
                    for name in models
                },
                "%",
                width=max(520, 90 * len(labels) * max(1, len(models)) // 2),
            )
        )
    if retention:
        chart_list.append(
            charts.horizontal_bars(
                f"Average retention against {baseline} (%)",
                [
                    (name, _rounded(values.get("average")) or 0, charts.PALETTE[index + 1])
                    for index, (name, values) in enumerate(retention.items())
                ],
            )
        )
    if speculative:
        summary.append(
            section(
                "Speculative decoding",
                table(
                    ("draft", "target", "engine", "γ", "prompts", "accepted / proposed", "acceptance α (%)", "τ"),
                    (
                        [
                            cell(draft),
                            cell(values.get("target")),
                            cell(values.get("engine")),
                            cell(values.get("draft_tokens")),
                            cell(values.get("prompts")),
                            cell(f"{values.get('accepted', 0):,} / {values.get('proposed', 0):,}"),
                            cell(_percent(values.get("acceptance_rate")), f"speculative.{draft}.acceptance_rate"),
                            cell(
                                _rounded(values.get("mean_accepted_length")),
                                f"speculative.{draft}.mean_accepted_length",
                            ),
                        ]
                        for draft, values in speculative.items()
                    ),
                ),
                wide=True,
            )
        )
        chart_list.append(
            charts.horizontal_bars(
                "Speculative-decoding acceptance α (%)",
                [
                    (draft, _percent(values.get("acceptance_rate")) or 0, charts.PALETTE[index])
                    for index, (draft, values) in enumerate(speculative.items())
                ],
            )
        )
    numbers = {"models": models, "baseline": baseline, "tasks": tasks, "retention": retention}
    numbers["speculative"] = speculative
    return View("eval", f"Eval: {', '.join(models)}", numbers, "".join(summary), chart_list, None)


def _described(model: object) -> str:
    """A model's record (path, revision, ...) as `key: value` pairs."""
    if isinstance(model, dict):
        return ", ".join(f"{key}: {value}" for key, value in model.items() if value not in (None, ""))
    return str(model)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


EVAL_VIEW = InspectView("an eval folder", artifacts.EVAL_RESULTS, eval_view)
