"""The select stage's options: clustering, selection and the stage itself, each one dataclass.

CLI flags and YAML keys are made from them; this module imports nothing heavy, so building the CLI
does not load numpy, torch or pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sdd_data.data.sources import SourceSpec


@dataclass
class ClusterConfig:
    """How rows are clustered before the budget is shared out."""

    cluster_mode: str = "scalable"
    """Clustering mode: scalable (sparse kNN graph, any N) or exact (the paper's dense kernel, small N)."""
    n_clusters: int | None = None
    """Number of clusters; unset picks it by the eigengap of the graph Laplacian."""
    max_clusters: int = 32
    """Largest number of clusters the eigengap rule may pick."""
    knn: int = 20
    """Neighbours per row in the scalable mode's graph."""
    knn_dims: int = 128
    """Principal components kept for the neighbour search (0 keeps every dimension)."""
    knn_exact_below: int = 5_000
    """Rows up to which the neighbour search compares every pair (exact); above, only rows of nearby cells."""
    knn_probes: int = 8
    """Nearby cells each row is searched in (above knn_exact_below): more is slower and finds more true neighbours."""
    sigma: str = "local"
    """Kernel width in the scalable mode: local (per row, distance to its k-th neighbour) or median."""
    assign: str = "kmeans"
    """How rows get clusters from the spectral embedding: kmeans, or nmf (exact mode only, as in the paper)."""
    exact_limit: int = 20_000
    """Most rows the exact mode accepts (it needs N² memory)."""


@dataclass
class SelectConfig:
    """Everything row selection needs; every field is also a CLI flag and a YAML key."""

    budget: str = "20%"
    """Rows to keep: digits only are a row count (2000; 1 is one row), a number with a decimal point is a
    fraction of the rows (0.2), a number ending in % is a percentage (20%)."""
    method: str = "paser"
    """Selection method: paser, random, longest (longest responses) or degradation (highest, unclustered)."""
    seed: int = 0
    """Seed for clustering and the random baseline."""
    dedupe: bool = True
    """Drop near-duplicate instructions before selecting (paser only)."""
    dedupe_threshold: float = 95.0
    """rapidfuzz token_sort_ratio (0-100) at which two instructions are near-duplicates."""
    concepts: bool = True
    """Skip rows whose key concepts conflict with the concept graph of accepted rows (paser only)."""
    phrases_per_row: int = 6
    """Key phrases (concepts) taken from each row for the concept graph."""
    concept_merge_score: float = 90.0
    """rapidfuzz ratio (0-100) at which a new concept merges into an existing one."""
    clustering: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass
class SelectStageConfig:
    """Everything the select stage needs; every field is also a CLI flag and a YAML key."""

    source: SourceSpec
    pruned_model: str
    """The pruned model: a local checkpoint folder or a Hub id."""
    original_model: str = "smollm2"
    """The original (unpruned) model: `smollm2`, a local checkpoint folder or a Hub id."""
    output: str = "runs/selected"
    """Output folder for the selected dataset and its report."""
    overwrite: bool = False
    """Replace what an earlier selection wrote to the output folder."""
    embedder: str = "all-MiniLM-L6-v2"
    """Sentence embedder for the user turns: all-MiniLM-L6-v2 (shipped offline), a local folder or a Hub id."""
    embed_batch_size: int = 64
    """Texts per embedding batch."""
    degradation: str = "response"
    """Degradation score: response (mean JSD over the response tokens under teacher forcing) or instruction
    (the PASER code's score on the raw instruction tokens, averaged here instead of summed)."""
    scorer_engine: str = "transformers"
    """Scorer: transformers (exact over the vocabulary) or vllm (approximated from top-k log-probabilities)."""
    batch_size: int = 8
    """Rows per forward pass of the transformers scorer."""
    max_length: int = 1024
    """Most tokens scored per row (prompt + response); longer rows keep the start of the response."""
    top_k: int = 20
    """vllm scorer: log-probabilities kept per position (the JSD uses the tokens in both models' top-k)."""
    dtype: str = "auto"
    """Weights dtype of both models: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16 or float16."""
    device: str = "auto"
    """transformers scorer: auto, cpu, cuda or cuda:N."""
    trust_remote_code: bool = False
    """Run model code from the checkpoints. Off unless you trust the models' authors."""
    cache_dir: str | None = None
    """Cache of embeddings and degradation scores; default: <sdd-data cache>/select."""
    selection: SelectConfig = field(default_factory=SelectConfig)
