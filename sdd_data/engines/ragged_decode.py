"""Batched decoding in which a row leaves the batch as soon as it ends, with drafts looked up in the prompt.

`model.generate` keeps every row of a batch in every step until the longest one is done, so a batch of
rows with ragged answer lengths spends most of its compute on rows that have already ended. Here a row
that reaches an end token or its token budget is dropped from the batch (and from the KV cache) at once:
each step costs what the rows still running cost, and a large batch is no longer a waste on CPU.

Greedy decoding can also check drafted tokens (prompt lookup): a row whose last tokens appeared earlier in
its prompt or answer proposes the tokens that followed them there, and one forward pass scores the row's
next token and every drafted one. The drafts the model would have chosen itself are kept, with the model's
own token after them, so a step makes one token or more and the text is the one greedy decoding makes (up
to float rounding, which differs between a one-token and a several-token pass). A self-distilled rewrite
quotes its reference answer, which sits in the prompt, so drafts are often right; and a step with few rows
is bound by reading the weights, so checking a few more tokens costs little. A rejected draft leaves a hole
in the row's KV cache, masked out, and the positions no row kept are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.engines.decode_cache import growing_cache, rewind, rewindable

LOOKUP_NGRAMS = (3, 2)
"""Lengths of the row's last tokens looked up for a draft, longest first (one token is too common a match)."""

LOOKUP_STEP_TOKENS = 16
"""Most tokens one checking step may score over all its rows: drafts shrink as rows grow, and a batch of 16 rows
or more drafts nothing. On a 2-core CPU a step of SmolLM2 costs 76 ms for one token, 116 ms for 4 and 126 ms for
16 (the weights are read once either way), but 218 ms for 32. On the README's example, 16 and 32 made the
same text in 209 and 205 steps, 29.8 and 30.2 s of decoding, against 311 steps and 37.8 s without drafts."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy when temperature is 0."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class DecodeCounts:
    """What decoding cost: forward passes after the prompt's, tokens made, and drafted tokens offered and kept."""

    steps: int = 0
    tokens: int = 0
    drafted: int = 0
    accepted: int = 0


def decode(
    model,
    token_ids: list[list[int]],
    room: list[int],
    end_ids: list[int],
    pad_id: int,
    sampling: Sampling,
    device,
    lookup: int = 0,
    counts: DecodeCounts | None = None,
) -> list[list[int]]:
    """The new tokens of each prompt (an end token included, when reached), at most `room[i]` of them.

    `lookup`: most drafted tokens a row offers per step (greedy decoding only; 0 drafts nothing). `counts`, when
    given, is added to."""
    import torch

    counts = counts if counts is not None else DecodeCounts()
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    choose = _chooser(sampling)
    ends = set(end_ids)

    generated: list[list[int]] = [[] for _ in token_ids]
    running = list(range(len(token_ids)))  # rows still in the batch, in batch order
    cache = growing_cache(model.config, width + max(room) + lookup)
    drafting = lookup > 0 and sampling.temperature == 0.0 and rewindable(cache)
    lookups = [_Lookup(ids) for ids in token_ids] if drafting else []
    drafts: list[list[int]] = [[] for _ in running]
    with torch.inference_mode():
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        next_position = positions[:, -1]  # of each row's first token fed in the last pass: its last prompt token
        while True:
            step = logits.shape[1]  # tokens each row fed this step: its last token and its draft, padded
            chosen = choose(logits.reshape(-1, logits.shape[-1])).view(len(running), step).tolist()
            kept, going = [], []
            for slot, row in enumerate(running):
                accepted = _accepted(drafts[slot], chosen[slot])
                new, ended = _cut(chosen[slot][: accepted + 1], ends, room[row] - len(generated[row]))
                generated[row] += new
                counts.tokens += len(new)
                counts.accepted += accepted
                if drafting:
                    lookups[row].extend(new)
                kept.append(1 + accepted)  # the row's fed tokens whose keys and values stay
                if not ended:
                    going.append(slot)
            if not going:
                break
            if step > 1:  # mask out the keys and values of rejected drafts, and drop the positions no row kept
                for slot, kept_tokens in enumerate(kept):
                    attention_mask[slot, attention_mask.shape[1] - step + kept_tokens :] = 0
                unused = step - max(kept[slot] for slot in going)
                if unused:
                    rewind(cache, unused)
                    attention_mask = attention_mask[:, :-unused]
            next_position = next_position + torch.tensor(kept, device=device)  # of the token each row feeds next
            if len(going) < len(running):
                keep = torch.tensor(going, device=device)
                cache.batch_select_indices(keep)
                attention_mask, next_position = attention_mask[keep], next_position[keep]
                running = [running[slot] for slot in going]
            drafts = [
                lookups[row].draft(min(lookup, room[row] - len(generated[row]) - 1, _draft_room(len(running)) - 1))
                if drafting
                else []
                for row in running
            ]
            step = 1 + max(len(draft) for draft in drafts)
            counts.drafted += sum(len(draft) for draft in drafts)
            fed = torch.full((len(running), step), pad_id, dtype=torch.long)
            for slot, row in enumerate(running):
                fed[slot, : 1 + len(drafts[slot])] = torch.tensor([generated[row][-1], *drafts[slot]])
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(running), step))], dim=1)
            logits = model(
                input_ids=fed.to(device),
                attention_mask=attention_mask,
                position_ids=next_position[:, None] + torch.arange(step, device=device),
                past_key_values=cache,
                use_cache=True,
            ).logits
            counts.steps += 1
    return generated


def _draft_room(rows: int) -> int:
    """Tokens per row a checking step of `rows` rows may feed (1: no draft)."""
    return max(1, LOOKUP_STEP_TOKENS // rows)


def _accepted(draft: list[int], chosen: list[int]) -> int:
    """How many of the drafted tokens are the ones the model chose: the leading run where they agree."""
    count = 0
    while count < len(draft) and draft[count] == chosen[count]:
        count += 1
    return count


def _cut(new: list[int], ends: set[int], room: int) -> tuple[list[int], bool]:
    """A step's new tokens up to the first end token and within `room`, and whether the row is done."""
    for position, token in enumerate(new[:room]):
        if token in ends:
            return new[: position + 1], True
    return new[:room], len(new) >= room


class _Lookup:
    """A row's tokens (prompt and answer) indexed by n-gram, to draft what followed the row's last tokens before."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        self.follows: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in LOOKUP_NGRAMS}
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            end = len(self.tokens)  # the n-grams ending just before this token are followed by it
            for n, follows in self.follows.items():
                if end >= n:
                    follows[tuple(self.tokens[end - n : end])] = end
            self.tokens.append(token)

    def draft(self, size: int) -> list[int]:
        """Up to `size` tokens that followed the latest earlier occurrence of the row's last tokens."""
        if size < 1:
            return []
        for n, follows in self.follows.items():
            start = follows.get(tuple(self.tokens[-n:])) if len(self.tokens) >= n else None
            if start is not None:
                return self.tokens[start : start + size]
        return []


def _chooser(sampling: Sampling):
    """argmax for greedy decoding; otherwise temperature, top-k and top-p (in that order, as transformers does)."""
    import torch

    if sampling.temperature == 0.0:
        return lambda logits: logits.argmax(dim=-1)

    def sample(logits):
        scores = logits.float() / sampling.temperature
        if sampling.top_k > 0:
            kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if sampling.top_p < 1.0:
            ordered, order = scores.sort(dim=-1, descending=True)
            mass_before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)
            ordered = ordered.masked_fill(mass_before >= sampling.top_p, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, order, ordered)
        return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)

    return sample
