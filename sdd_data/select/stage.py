"""The select stage: embed, score degradation, select with PASER (or a baseline), write the selection.

The output folder holds `data/` (the selected rows as a `datasets` dataset: the input's columns plus
cluster, degradation, ies, rank and selection_reason), `outcome.parquet` (every row's outcome),
`report.json`, `clusters.png` (clustered methods) and `sdd_data.json` (provenance). Everything is
written into a temporary folder beside the output, then renamed into place.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sdd_data import __version__
from sdd_data.artifacts import DATA_DIR, PROVENANCE_FILE, SELECT_OUTCOME, SELECT_PLOT, SELECT_REPORT
from sdd_data.config import config_to_flat_dict
from sdd_data.errors import SddError, require
from sdd_data.models import ResolvedModel, check_same_tokenizer, load_tokenizer, resolve_model
from sdd_data.models.identity import model_folder_digest
from sdd_data.output_folder import staged_output
from sdd_data.select.budget import resolve_budget
from sdd_data.select.config import SelectConfig, SelectStageConfig
from sdd_data.select.embed import embed_texts, resolve_embedder
from sdd_data.select.report import plot_clusters, report_table
from sdd_data.select.score_inputs import MODES, per_row, scoring_units
from sdd_data.select.scorer_base import ScorerOptions
from sdd_data.select.scorers import SCORERS, cached_scores, score_cache
from sdd_data.select.selection import SelectionResult
from sdd_data.select.selectors import SELECTORS, select_rows
from sdd_data.select.stage_inputs import SelectionSource, load_selection_source
from sdd_data.select.vector_cache import default_cache_dir


@dataclass
class SelectStageResult:
    """Where the selection went and what it decided."""

    output: Path
    result: SelectionResult
    provenance: dict


def check_options(config: SelectStageConfig) -> None:
    """Refuse options that cannot run, before anything is read or loaded (`sdd-data run` calls it for every step)."""
    if config.degradation not in MODES:
        raise SddError(f"unknown degradation mode {config.degradation!r}; known: {', '.join(MODES)}")
    if config.scorer_engine not in SCORERS:
        raise SddError(f"unknown scorer engine {config.scorer_engine!r}; known: {', '.join(SCORERS.names())}")
    if config.selection.method not in SELECTORS:
        raise SddError(f"unknown selection method {config.selection.method!r}; known: {', '.join(SELECTORS.names())}")
    for name in ("batch_size", "embed_batch_size", "top_k"):
        if getattr(config, name) < 1:
            raise SddError(f"{name} must be at least 1, got {getattr(config, name)}")
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        raise SddError(f"output {output} is a file, not a folder")
    if output.is_dir() and any(output.iterdir()) and not config.overwrite:
        raise SddError(f"output folder {output} is not empty; use --overwrite to replace its selection")
    if output.is_dir() and config.overwrite and any(output.iterdir()) and not (output / PROVENANCE_FILE).is_file():
        raise SddError(f"{output} holds no sdd-data selection; --overwrite replaces only a selection's own folder")


def _check_rows_fit(n_rows: int, config: SelectConfig) -> None:
    """Fail before any model runs when the rows cannot be clustered or the budget is malformed."""
    resolve_budget(config.budget, n_rows)
    if config.method != "paser":
        return
    fixed = config.clustering.n_clusters
    if fixed is not None and n_rows <= fixed:
        raise SddError(f"{n_rows} rows cannot be split into {fixed} clusters: need more rows than clusters")
    if fixed is None and n_rows < 4:
        raise SddError(f"{n_rows} rows are too few to pick a number of clusters (need at least 4)")


def model_identity(model: ResolvedModel) -> str:
    """What a model's cached scores are keyed by: name and revision, or what a local folder holds (so a model
    made again identically, a pruned cut say, keeps its scores, and any change to it does not)."""
    return f"{model.name}@{model.revision}" if model.revision else f"local@{model_folder_digest(model.path)}"


def _reasons(result: SelectionResult) -> list[str]:
    """Why each row was or was not chosen, in words."""
    clusters = {row["cluster"]: row for row in result.report.get("clusters", [])}
    explained = []
    for row in range(len(result.reason)):
        facts = f"degradation {result.degradation[row]:.5f}, IES {result.ies[row]:.5f}"
        if result.cluster[row] >= 0:
            info = clusters[int(result.cluster[row])]
            facts = (
                f"cluster {info['cluster']} (mean degradation {info['mean_degradation']:.5f}, budget "
                f"{info['budget']} of {info['size']} rows), IES rank {result.rank[row]} in cluster, {facts}"
            )
        else:
            facts = f"rank {result.rank[row]} by {result.method}, {facts}"
        explained.append(f"{result.reason[row]}: {facts}")
    return explained


def _outcome_table(source: SelectionSource, result: SelectionResult, scored) -> pa.Table:
    """Every input row's outcome: the scored rows, then the rows set aside before selection (not selected)."""
    columns = {
        "id": [row["id"] for row in source.rows],
        **result.columns(),
        "prompt_tokens": [row.prompt_tokens for row in scored],
        "response_tokens": [row.response_tokens for row in scored],
        "truncated": [row.truncated for row in scored],
        "selection_reason": _reasons(result),
    }
    scored_table = pa.table(columns)
    if not source.set_aside:
        return scored_table
    aside = {name: [None] * len(source.set_aside) for name in columns}
    aside["id"] = [row["id"] for row in source.set_aside]
    aside["selected"] = [False] * len(source.set_aside)
    aside["reason"] = [row["reason"] for row in source.set_aside]
    aside["selection_reason"] = [f"set aside before selection: {row['reason']}" for row in source.set_aside]
    return pa.concat_tables([scored_table, pa.table(aside, schema=scored_table.schema)])


def _selected_table(source: SelectionSource, outcome: pa.Table, result: SelectionResult) -> pa.Table:
    indices = pa.array(result.selected_indices)
    table = source.table.take(indices)
    for name in ("cluster", "degradation", "ies", "rank", "selection_reason"):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, outcome.column(name).take(indices))
    return table


def _write(
    output: Path, selected: pa.Table, outcome: pa.Table, result: SelectionResult, provenance: dict, overwrite: bool
) -> None:
    datasets = require("datasets", "select")
    with staged_output(output, replace=overwrite) as staging:
        datasets.Dataset(selected).save_to_disk(str(staging / DATA_DIR))
        pq.write_table(outcome, staging / SELECT_OUTCOME)
        (staging / SELECT_REPORT).write_text(json.dumps(result.report, indent=2, default=str) + "\n")
        if "clusters" in result.report:
            plot_clusters(result, staging / SELECT_PLOT)
        (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False, default=str) + "\n")


def select(config: SelectStageConfig, show_progress: bool = True) -> SelectStageResult:
    """Run the select stage and write the selected dataset, its report and its provenance."""
    check_options(config)
    source = load_selection_source(config.source)
    _check_rows_fit(len(source.rows), config.selection)
    original, pruned = resolve_model(config.original_model), resolve_model(config.pruned_model)
    tokenizer = load_tokenizer(original.path, trust_remote_code=config.trust_remote_code)
    check_same_tokenizer(
        tokenizer,
        load_tokenizer(pruned.path, trust_remote_code=config.trust_remote_code),
        f"the original model {original.name}",
        f"the pruned model {pruned.name}",
    )
    units, owners = scoring_units(tokenizer, source.rows, config.degradation, config.max_length)
    cache_root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()

    user_turns = source.user_turns
    embeddings = embed_texts(
        user_turns,
        config.embedder,
        config.embed_batch_size,
        None if config.device == "auto" else config.device,
        cache_root,
        show_progress,
    )
    options = ScorerOptions(
        batch_size=config.batch_size,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        top_k=config.top_k,
    )
    cache = score_cache(
        cache_root,
        model_identity(original),
        model_identity(pruned),
        config.scorer_engine,
        config.dtype,
        config.degradation,
        config.top_k,
    )
    unit_scores, scorer_info = cached_scores(
        units, cache, lambda: SCORERS.get(config.scorer_engine)(original.path, pruned.path, options), show_progress
    )
    degradation, scored = per_row(units, owners, unit_scores, len(source.rows))

    result = select_rows(
        embeddings,
        degradation,
        np.array([row.prompt_tokens for row in scored]),
        np.array([row.response_tokens for row in scored]),
        user_turns,
        source.texts,
        config.selection,
    )
    turns = source.turn_counts
    if turns["conversations"]:
        selected_rows = [source.rows[index] for index in result.selected_indices]
        result.report["turns"] = {**turns, "selected": SelectionSource.count_turns(selected_rows)}
    outcome = _outcome_table(source, result, scored)
    provenance = {
        "stage": "select",
        "config": config_to_flat_dict(config),
        "source": source.provenance,
        "original_model": {"name": original.name, "revision": original.revision},
        "pruned_model": {"name": pruned.name, "revision": pruned.revision},
        "embedder": {"name": resolve_embedder(config.embedder).name, "normalised": True},
        "scorer": {
            "engine": config.scorer_engine,
            "mode": config.degradation,
            "max_length": config.max_length,
            **scorer_info,
            "note": scorer_note(config),
        },
        "counts": {
            "rows": len(source.rows),
            **turns,
            "selected": int(result.selected.sum()),
            "budget": result.budget,
            "truncated_rows": sum(row.truncated for row in scored),
            "set_aside": len(source.set_aside),
            "outcomes": dict(Counter(reason.split(":", 1)[0] for reason in result.reason)),
        },
        "degradation": {"mean": float(degradation.mean()), "max": float(degradation.max())},
        "sdd_data_version": __version__,
    }
    output = Path(config.output)
    _write(output, _selected_table(source, outcome, result), outcome, result, provenance, config.overwrite)
    if show_progress:
        print(report_table(result))
        if "turns" in result.report:
            counts = result.report["turns"]
            print(
                f"conversations: {counts['conversations']} of the rows, {counts['assistant_turns']} assistant turns; "
                f"selected: {counts['selected']['conversations']} conversations, "
                f"{counts['selected']['assistant_turns']} assistant turns"
            )
        print(f"selected rows: {output / 'data'}; report: {output / 'report.json'}")
    return SelectStageResult(output, result, provenance)


def scorer_note(config: SelectStageConfig) -> str:
    """How the degradation score was computed, in one sentence (exact or approximate)."""
    where = (
        "the response tokens under teacher forcing"
        if config.degradation == "response"
        else "the raw instruction tokens (PASER's score, averaged instead of summed)"
    )
    if not SCORERS.get(config.scorer_engine).exact:
        return (
            f"approximate: mean JSD over {where}, from each model's top-{config.top_k} log-probabilities "
            "(tokens in both top-k sets plus one bucket for the rest; a lower bound of the exact JSD)"
        )
    return f"exact: mean JSD over {where}, full vocabulary, fp32 log-softmax in log space"
