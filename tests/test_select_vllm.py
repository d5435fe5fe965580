"""The vLLM degradation scorer against the exact transformers scorer, on the tiny Llama (slow, subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import transformers
from cores import engine_environment
from test_select_degrade import ROWS as DEGRADE_ROWS

pytestmark = pytest.mark.slow

ROWS = DEGRADE_ROWS[:2]  # two rows: a short answer and a longer one

SCRIPT = """
import json, sys
import transformers
from sdd_data.select.score_inputs import scoring_rows
from sdd_data.select.scorer_base import ScorerOptions
from sdd_data.select.vllm_scorer import VllmScorer

if __name__ == "__main__":
    original, pruned, rows_json = sys.argv[1:4]
    rows = json.loads(rows_json)
    tokenizer = transformers.AutoTokenizer.from_pretrained(original)
    # Both modes in one pass per model: two engine starts in all.
    scored = scoring_rows(tokenizer, rows, "response", 256) + scoring_rows(tokenizer, rows, "instruction", 256)
    scorer = VllmScorer(original, pruned, ScorerOptions(top_k=len(tokenizer), dtype="float32"))
    print("SCORES " + json.dumps(scorer.score(scored).tolist()))
    print("NOTE " + scorer.describe()["note"])
"""


def test_vllm_scores_with_the_whole_vocabulary_match_the_exact_scorer(tiny_llama_path, tiny_llama_variant_path):
    from sdd_data.select.score_inputs import scoring_rows
    from sdd_data.select.scorer_base import ScorerOptions
    from sdd_data.select.transformers_scorer import TransformersScorer

    env = engine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    finished = subprocess.run(
        [sys.executable, "-c", SCRIPT, tiny_llama_path, tiny_llama_variant_path, json.dumps(ROWS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    line = next(line for line in finished.stdout.splitlines() if line.startswith("SCORES "))
    approximate = np.array(json.loads(line[len("SCORES ") :]))
    assert "approximate" in finished.stdout
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama_path)
    scored = scoring_rows(tokenizer, ROWS, "response", 256) + scoring_rows(tokenizer, ROWS, "instruction", 256)
    exact = TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions()).score(scored)
    assert (exact > 1e-4).all()
    assert np.allclose(approximate, exact, atol=2e-4), (approximate, exact)
