"""Model-free core of PASER row selection: clustering, budgets, IES ranking, concept and duplicate filters.

Inputs are per-row arrays (embeddings, degradation scores, token counts) and texts. The models that
produce them live in `embed` (sentence embeddings), `score_inputs` + `scorers` + `vllm_scorer`
(JSD between the original and the pruned model, maths in `degrade`), and `stage` runs it all as
the `select` stage.
"""

from .budget import allocate_budget, largest_remainder, resolve_budget
from .cluster import (
    ASSIGNERS,
    CLUSTER_MODES,
    ClusterConfig,
    Clustering,
    cluster_rows,
    eigengap_clusters,
)
from .concepts import ConceptGraph, key_phrases, normalise_concept
from .dedupe import near_duplicates
from .rank import instruction_efficiency
from .selection import (
    SELECTORS,
    SelectConfig,
    SelectionResult,
    register_selector,
    select_rows,
)

__all__ = [
    "ASSIGNERS", "CLUSTER_MODES", "SELECTORS", "ClusterConfig", "Clustering", "ConceptGraph", "SelectConfig",
    "SelectionResult", "allocate_budget", "cluster_rows", "eigengap_clusters", "instruction_efficiency",
    "key_phrases", "largest_remainder", "near_duplicates", "normalise_concept", "register_selector",
    "resolve_budget", "select_rows",
]
