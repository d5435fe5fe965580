"""Capability degradation: Jensen–Shannon divergence between two models' next-token distributions.

Per position, JSD(P, Q) = ½KL(P‖M) + ½KL(Q‖M) with M = ½(P + Q), computed in fp32 from
log-softmax outputs, in log space: log M = logsumexp(log P, log Q) − log 2. Zero-probability
tokens contribute exactly 0 (exp(−inf) · finite), never NaN. The value lies in [0, ln 2]; rounding
is clamped into that range. A row's score is the mean over its scored positions (padding masked).

`topk_jsd` is the approximation used when only each model's top-k log-probabilities are known
(vLLM `prompt_logprobs`): both distributions are coarsened onto the tokens present in both top-k
sets plus one "other" bucket holding the rest of each model's mass. Being the JSD of one common
coarsening of P and Q, it is a lower bound of the exact JSD (data-processing inequality) and equals
it when every token with mass under either model is in both sets.
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def jsd_from_log_probs(log_p, log_q):
    """Per-position JSD (last dimension = vocabulary) of two log-probability tensors, in nats."""
    torch = _torch()
    log_p, log_q = log_p.float(), log_q.float()
    log_m = torch.logaddexp(log_p, log_q) - LN2
    kl_p = _kl_terms(torch, log_p, log_m).sum(-1)
    kl_q = _kl_terms(torch, log_q, log_m).sum(-1)
    return (0.5 * (kl_p + kl_q)).clamp(0.0, LN2)


def _kl_terms(torch, log_a, log_m):
    """a · (log a − log m) per token, exactly 0 where a = 0."""
    return torch.where(log_a > -math.inf, log_a.exp() * (log_a - log_m), torch.zeros_like(log_a))


def jsd_from_logits(logits_p, logits_q):
    """Per-position JSD of two logit tensors (softmax over the last dimension, fp32)."""
    torch = _torch()
    return jsd_from_log_probs(torch.log_softmax(logits_p.float(), dim=-1), torch.log_softmax(logits_q.float(), dim=-1))


def masked_mean_jsd(logits_p, logits_q, mask):
    """Per-row mean JSD over the positions where `mask` is true ([B, T, V] logits, [B, T] mask)."""
    mask = mask.bool()
    per_position = jsd_from_logits(logits_p[mask], logits_q[mask])
    counts = mask.sum(dim=1)
    totals = per_position.new_zeros(mask.shape[0]).index_add_(0, mask.nonzero()[:, 0], per_position)
    return totals / counts.clamp(min=1)


def topk_jsd(ids_p: np.ndarray, log_p: np.ndarray, ids_q: np.ndarray, log_q: np.ndarray) -> float:
    """JSD of one position from the two models' top-k token ids and log-probabilities (a lower bound)."""
    _, in_p, in_q = np.intersect1d(ids_p, ids_q, assume_unique=True, return_indices=True)
    p = np.exp(log_p[in_p].astype(np.float64))
    q = np.exp(log_q[in_q].astype(np.float64))
    p = np.append(p, max(0.0, 1.0 - p.sum()))
    q = np.append(q, max(0.0, 1.0 - q.sum()))
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(min(max(0.5 * (kl_p + kl_q), 0.0), LN2))


def _torch():
    from sdd_data.errors import require

    return require("torch", "hf")
