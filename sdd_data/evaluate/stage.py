"""The eval stage: score original, pruned and recovered models on a task set, retention against the original,
and the speculative-decoding acceptance of pruned models drafting for the original.

Every model runs on the same seeded subset of every task. Built-in tasks (gsm8k, mc) share one
loaded copy of each model; lm-eval tasks load the checkpoint themselves.
"""

from __future__ import annotations

from pathlib import Path

from sdd_data.artifacts import EVAL_PLOT, EVAL_RESULTS, EVAL_RESULTS_KIND, detect
from sdd_data.config import config_to_flat_dict
from sdd_data.engines import ENGINES
from sdd_data.errors import SddError
from sdd_data.evaluate.config import EVAL_ENGINES, EvalConfig
from sdd_data.evaluate.drafts import measure_drafts
from sdd_data.evaluate.report import build_report, format_table, write_report
from sdd_data.evaluate.task_base import EvalModel, EvalTask, TaskResult, TaskSettings
from sdd_data.evaluate.tasks import parse_tasks
from sdd_data.models import resolve_model
from sdd_data.output_folder import check_output_place


def parse_models(text: str) -> dict[str, str]:
    """Model name -> model (short name, folder or Hub id) from `name=model,name=model`."""
    models: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, separator, model = (part.strip() for part in entry.partition("="))
        if not separator:
            name, model = entry, entry
        if not name or not model:
            raise SddError(f"model entry {entry!r} must be name=model")
        if name in models:
            raise SddError(f"model name {name!r} is given twice")
        models[name] = model
    if not models:
        raise SddError("no models to evaluate: pass --models original=<model>[,pruned=<model>...]")
    return models


def choose_baseline(models: dict[str, str], baseline: str | None) -> str:
    """The retention denominator: `baseline`, else the model named original, else the first."""
    if baseline is not None:
        if baseline not in models:
            raise SddError(f"baseline {baseline!r} is not one of the models ({', '.join(models)})")
        return baseline
    return "original" if "original" in models else next(iter(models))


def _resolve(name: str, model: str):
    try:
        return resolve_model(model)
    except SddError as error:
        raise SddError(f"model {name} ({model}): {error}") from None


def _load_engine(path: str, config: EvalConfig):
    from sdd_data.engines import EngineConfig, load_engine

    return load_engine(
        config.engine,
        path,
        EngineConfig(
            dtype=config.dtype,
            device=config.device,
            batch_size=config.batch_size,
            trust_remote_code=config.trust_remote_code,
        ),
    )


def _run_model(
    name: str, path: str, tasks: list[EvalTask], settings: TaskSettings, config: EvalConfig
) -> dict[str, TaskResult]:
    """Every task's result for one model; built-in tasks share one loaded copy of it."""
    engine = _load_engine(path, config) if any(not task.loads_own_model for task in tasks) else None
    try:
        model = EvalModel(name, path, engine)
        return {task.label: task.run(model, settings) for task in tasks}
    finally:
        if engine is not None:
            engine.close()


def check_eval_output(output: Path) -> None:
    """Refuse an eval output that is a file or sits in one, or a folder holding anything but earlier results."""
    check_output_place(output)
    if not output.is_dir() or not any(output.iterdir()):
        return
    found = detect(output)
    if found is None or found.kind != EVAL_RESULTS_KIND:
        kind = f"a {found.kind} output" if found else "other files"
        raise SddError(f"output {output} holds {kind}; choose a new folder (or one holding earlier eval results)")


def check_options(config: EvalConfig) -> tuple[dict[str, str], str, list[EvalTask]]:
    """The models, the baseline and the tasks, once the options are known to make a run; before any model
    loads (`sdd-data run` calls it for every step)."""
    if config.engine not in ENGINES:
        raise SddError(f"unknown engine {config.engine!r}; use {' or '.join(EVAL_ENGINES)}")
    check_eval_output(Path(config.output))
    models = parse_models(config.models)
    tasks = parse_tasks(config.tasks)
    scoring = [task.label for task in tasks if task.scores_loglikelihoods]
    if scoring and config.engine not in EVAL_ENGINES:
        raise SddError(
            f"engine {config.engine} cannot score log-likelihoods, which {', '.join(scoring)} need; "
            f"use {' or '.join(EVAL_ENGINES)}"
        )
    return models, choose_baseline(models, config.baseline), tasks


def evaluate(config: EvalConfig) -> dict:
    """Score every model on every task, print the table, write results.json and results.png; return the report."""
    models, baseline, tasks = check_options(config)
    drafts = [entry.strip() for entry in (config.speculative or "").split(",") if entry.strip()]
    settings = TaskSettings(
        limit=config.limit,
        seed=config.seed,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        mc_delimiter=config.mc_delimiter,
    )
    for task in tasks:
        task.prepare(settings)
    resolved = {name: _resolve(name, model) for name, model in models.items()}
    draft_paths = {
        draft: resolved[draft].path if draft in resolved else _resolve(draft, draft).path for draft in drafts
    }
    results: dict[str, dict[str, TaskResult]] = {task.label: {} for task in tasks}
    for name, model in resolved.items():
        for label, result in _run_model(name, model.path, tasks, settings, config).items():
            results[label][name] = result
    speculative = measure_drafts(config, resolved[baseline].path, baseline, draft_paths) if draft_paths else {}
    described = {
        name: {"model": models[name], "path": model.path, "resolved_name": model.name, "revision": model.revision}
        for name, model in resolved.items()
    }
    report = build_report(described, baseline, results, speculative)
    report["config"] = config_to_flat_dict(config)
    print(format_table(report))
    write_report(report, Path(config.output))
    print(f"wrote {Path(config.output) / EVAL_RESULTS} and {EVAL_PLOT}")
    return report
