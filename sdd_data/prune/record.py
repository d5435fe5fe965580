"""The prune record (`sdd_data_prune.json`) in words, for model cards: what was cut and how it was chosen.

Pure functions of the record's JSON, so cards can describe a pruned model without loading it. Records
written before width pruning existed (blocks only, no `shape`) read the same way.
"""

from __future__ import annotations

WIDTH_AXES = (
    ("intermediate_size", "MLP width", " in every block"),
    ("num_key_value_heads", "KV heads", " per block"),
    ("hidden_size", "hidden size", ""),
)


def describe_pruning(record: dict) -> dict:
    """`description` (a table cell), `summary` (after "the base model with ...") and `short` (a few words)."""
    cells, summaries, shorts = [], [], []
    blocks = record.get("removed_blocks") or []
    if blocks:
        cells.append(_blocks_cell(record, blocks))
        summaries.append(f"{len(blocks)} of its decoder blocks removed")
        shorts.append(f"blocks {', '.join(map(str, blocks))} removed")
    shape = record.get("shape") or {}
    before, after = shape.get("before") or {}, shape.get("after") or {}
    widths = []
    for key, name, where in WIDTH_AXES:
        if before.get(key) is not None and before.get(key) != after.get(key):
            widths.append(f"{name} {before[key]} → {after[key]}{where}")
            if key == "num_key_value_heads":
                widths[-1] += f" (query heads {before['num_attention_heads']} → {after['num_attention_heads']})"
            summaries.append(f"its {name} cut from {before[key]} to {after[key]}")
            shorts.append(f"{name} {before[key]} → {after[key]}")
    if widths:
        cells.append(f"{', '.join(widths)}, chosen by `{record.get('method')}`")
    if before.get("parameters") and after.get("parameters"):
        cells.append(f"{_millions(before['parameters'])} → {_millions(after['parameters'])} parameters")
    return {
        "description": "; ".join(cells) or "nothing recorded",
        "summary": " and ".join(summaries) or "pruned",
        "short": ", ".join(shorts) or "pruned",
    }


def _blocks_cell(record: dict, blocks: list[int]) -> str:
    before, after = record.get("num_blocks_before"), record.get("num_blocks_after")
    method = record.get("block_method", record.get("method"))
    listed = ", ".join(map(str, blocks))
    count = (
        f"{len(blocks)} of {before} decoder blocks"
        if before
        else f"{len(blocks)} decoder block" + "s" * (len(blocks) > 1)
    )
    text = f"removed {count} (0-based: {listed})"
    if method == "explicit":
        text += " given by hand"
    elif method:
        text += f" chosen by `{method}`"
    return text + (f"; {after} left" if after else "")


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M"
