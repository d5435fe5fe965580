"""The vLLM degradation scorer: JSD approximated from each model's top-k log-probabilities.

Each model runs once over every row's full token ids with `prompt_logprobs=k` (and `logprobs=k` on
one generated token, for the distribution after the last token). A position's distribution is
known only on the k tokens vLLM returns (plus the actual next token); `degrade.topk_jsd` compares
the two models on the tokens both returned, with the rest of each model's mass in one "other"
bucket, which gives a lower bound of the exact JSD. The models run one after the other (one engine
at a time); the first model's top-k values are held in memory, about 6·k bytes per scored position.
`vllm.LLM` starts worker processes: scripts need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sdd_data.engines import load_engine
from sdd_data.engines.base import EngineConfig
from sdd_data.errors import SddError
from sdd_data.select.degrade import topk_jsd
from sdd_data.select.score_inputs import ScoringRow
from sdd_data.select.scorer_base import ScorerOptions

TopK = list[tuple[np.ndarray, np.ndarray]]
"""Per scored position: token ids and their log-probabilities."""


def _as_arrays(logprobs: dict) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter(logprobs.keys(), dtype=np.int64, count=len(logprobs))
    values = np.fromiter((entry.logprob for entry in logprobs.values()), dtype=np.float32, count=len(logprobs))
    return ids, values


class VllmScorer:
    """Approximate JSD from vLLM top-k log-probabilities (see the module docstring)."""

    name = "vllm"
    exact = False

    def __init__(self, original_path: str, pruned_path: str, options: ScorerOptions):
        self.paths = (original_path, pruned_path)
        self.options = options
        self._engine_info: dict = {}

    def _top_logprobs(self, path: str, rows: list[ScoringRow]) -> list[TopK]:
        import vllm

        longest = max(len(row.token_ids) for row in rows) + 1
        engine_config = EngineConfig(
            dtype=self.options.dtype,
            trust_remote_code=self.options.trust_remote_code,
            max_model_len=longest,
            extra={"max_logprobs": self.options.top_k, "enable_prefix_caching": False},
        )
        engine = load_engine("vllm", path, engine_config)
        try:
            self._engine_info = engine.describe()
            params = vllm.SamplingParams(
                max_tokens=1, temperature=0.0, logprobs=self.options.top_k, prompt_logprobs=self.options.top_k
            )
            # The engine object owns the vllm.LLM; scoring needs its raw prompt log-probabilities.
            outputs = engine.llm.generate(
                [{"prompt_token_ids": list(row.token_ids)} for row in rows], params, use_tqdm=False
            )
        finally:
            engine.close()
        top = []
        for row, output in zip(rows, outputs):
            positions = []
            for position in range(row.first, row.last + 1):
                if position + 1 < len(row.token_ids):
                    logprobs = output.prompt_logprobs[position + 1]
                else:
                    logprobs = output.outputs[0].logprobs[0]
                if not logprobs:
                    raise SddError("vllm returned no log-probabilities for a scored position")
                positions.append(_as_arrays(logprobs))
            top.append(positions)
        return top

    def score(self, rows: list[ScoringRow], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Mean approximate JSD per row over its scored positions."""
        original = self._top_logprobs(self.paths[0], rows)
        pruned = self._top_logprobs(self.paths[1], rows)
        scores = np.array(
            [
                np.mean([topk_jsd(ids_o, log_o, ids_p, log_p) for (ids_o, log_o), (ids_p, log_p) in zip(row_o, row_p)])
                for row_o, row_p in zip(original, pruned)
            ],
            dtype=np.float64,
        )
        if progress is not None:
            progress(len(rows))
        return scores

    def describe(self) -> dict:
        """Engine settings; the score is an approximation (a lower bound) from top-k log-probabilities."""
        return {
            **self._engine_info,
            "engine": self.name,
            "exact": False,
            "top_k": self.options.top_k,
            "note": f"approximate: top-{self.options.top_k} log-probabilities, shared tokens plus one bucket for "
            "the rest of the mass (a lower bound of the exact JSD)",
        }

    def close(self) -> None:
        """Nothing to free: each model's engine is closed after its pass."""
