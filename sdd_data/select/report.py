"""Selection reports: a JSON file, a printed cluster table and a PNG of cluster sizes, budgets and CDS."""

from __future__ import annotations

import json
from pathlib import Path

from sdd_data.errors import require
from sdd_data.select.selection import SelectionResult

_COLUMNS = ("cluster", "size", "mean_degradation", "budget", "selected", "near_duplicates", "concept_conflicts")


def report_table(result: SelectionResult) -> str:
    """A plain-text summary: totals, then one line per cluster (paser) or none (baselines)."""
    report = result.report
    lines = [f"method {result.method}: {report['selected']} of {report['rows']} rows selected (budget {result.budget})"]
    if "clusters" in report:
        lines.append(f"clusters: {report['n_clusters']} ({report['k_rule']}), mode {report['cluster_mode']}")
        lines.append("  ".join(f"{name:>17}" for name in _COLUMNS))
        for row in report["clusters"]:
            lines.append(
                "  ".join(
                    f"{row[name]:>17.4f}" if isinstance(row[name], float) else f"{row[name]:>17}" for name in _COLUMNS
                )
            )
    seconds = ", ".join(f"{name} {value:.2f}s" for name, value in report.get("seconds", {}).items())
    lines.append(f"time: {seconds}")
    return "\n".join(lines)


def plot_clusters(result: SelectionResult, path: Path) -> Path:
    """Bar chart of cluster sizes and budgets, with mean degradation on a second axis (PNG)."""
    matplotlib = require("matplotlib", "select")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "select")
    clusters = result.report.get("clusters", [])
    figure, sizes_axis = pyplot.subplots(figsize=(max(6.0, 0.45 * len(clusters) + 3), 4))
    positions = range(len(clusters))
    sizes_axis.bar([p - 0.2 for p in positions], [row["size"] for row in clusters], width=0.4, label="rows")
    sizes_axis.bar([p + 0.2 for p in positions], [row["budget"] for row in clusters], width=0.4, label="budget")
    sizes_axis.set_xlabel("cluster")
    sizes_axis.set_ylabel("rows")
    sizes_axis.set_xticks(list(positions), [str(row["cluster"]) for row in clusters])
    degradation_axis = sizes_axis.twinx()
    degradation_axis.plot(
        list(positions), [row["mean_degradation"] for row in clusters], "o-", color="black", label="mean degradation"
    )
    degradation_axis.set_ylabel("mean degradation (CDS)")
    handles = sizes_axis.get_legend_handles_labels()
    more = degradation_axis.get_legend_handles_labels()
    sizes_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper right")
    sizes_axis.set_title(f"{result.method}: {result.report['selected']} of {result.report['rows']} rows")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def write_report(result: SelectionResult, folder: str | Path) -> dict[str, Path]:
    """Write select_report.json and, for clustered methods, select_clusters.png into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "select_report.json"}
    paths["json"].write_text(json.dumps(result.report, indent=2) + "\n")
    if "clusters" in result.report:
        paths["png"] = plot_clusters(result, folder / "select_clusters.png")
    return paths
