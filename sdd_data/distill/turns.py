"""Units of teacher work and whole conversations out of their judged turns.

A single-turn row is one unit. A conversation is one unit per assistant turn that answers a user: the teacher
sees the turns before that user turn (its `history`) and rewrites the answer, with that turn's original
response as the reference, and the filter judges it on its own. Assistant turns that call a tool, or that
answer a tool result, are kept as written with a reason. The conversation is stored whole: every turn in
`messages` (rewrites in place of the turns that kept theirs) and one record per assistant turn in `turns`.

What the teacher sees as the earlier assistant turns is the `turn_context`: `original` (the default: the turns
as the source wrote them, so all the turns of a conversation are generated at once and a later user turn that
quotes an earlier answer still makes sense) or `rewritten` (each turn after the earlier ones are decided, in
rounds, so the teacher continues its own conversation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sdd_data.data.conversations import AFTER_TOOL, MESSAGE_KEYS, TOOL_CALL, rewritable
from sdd_data.data.records import sft_messages

TURN_CONTEXTS = ("original", "rewritten")
PARTIAL_REWRITE = "partial_rewrite"
"""Reason of a conversation in which some assistant turns keep their rewrite and others their original."""
NOT_GENERATED = "not_generated"
"""Reason of a turn left unjudged (its conversation's earlier turn was dropped before it came up)."""
_NOT_TRIED = (TOOL_CALL, AFTER_TOOL, NOT_GENERATED)


@dataclass(frozen=True)
class TurnUnit:
    """One request to the teacher: which row and turn it is, what the template and filter read, its seed key."""

    position: int
    turn: int | None  # the assistant turn's place in the conversation; None for a single-turn row
    row: dict
    seed_key: str

    @property
    def key(self) -> tuple[int, int | None]:
        return self.position, self.turn


def rewritable_turns(row: dict) -> list[int | None]:
    """The turns of a row the teacher rewrites: [None] for a single-turn row, else each answer to a user."""
    turns = row.get("conversation")
    if turns is None:
        return [None]
    return [
        place for place, turn in enumerate(turns) if turn["role"] == "assistant" and rewritable(turns, place) is None
    ]


def plan_units(rows: list[dict], depth: int | None, finals: dict[tuple[int, int | None], str]) -> list[TurnUnit]:
    """The units of a shard: all of them (`depth` None), or the `depth`-th rewritable turn of each row.

    `finals` holds the decided text of turns already judged; with it the history shows those turns as kept."""
    units = []
    for position, row in enumerate(rows):
        places = rewritable_turns(row)
        chosen = places if depth is None else places[depth : depth + 1]
        for place in chosen:
            if place is None:
                units.append(TurnUnit(position, None, row, row["id"]))
                continue
            unit_row = _turn_row(row, place, position, finals)
            units.append(TurnUnit(position, place, unit_row, f"{row['id']}:turn-{place}"))
    return units


def _turn_row(row: dict, place: int, position: int, finals: dict[tuple[int, int | None], str]) -> dict:
    """What the template and the filter read for one assistant turn of a conversation."""
    turns = row["conversation"]
    history = [
        {**turn, "content": finals.get((position, earlier), turn["content"])} if turn["role"] == "assistant" else turn
        for earlier, turn in enumerate(turns[: place - 1])
    ]
    return {
        **row,
        "instruction": turns[place - 1]["content"],
        "input": "",
        "response": turns[place]["content"],
        "reference_answer": None,
        "history": history,
    }


def row_record(row: dict, judged: dict[tuple[int, int | None], dict], position: int) -> dict:
    """The distilled row of a single-turn row or a whole conversation, from its judged turns."""
    base = {key: value for key, value in row.items() if key not in ("conversation", "history")}
    if row.get("conversation") is None:
        verdict = dict(judged[(position, None)])
        final = verdict.pop("final")
        messages = None if verdict["decision"] == "dropped" else sft_messages(row, final)
        return {**base, **verdict, "messages": messages, "turns": None, "conversation": None}
    return {**base, **_conversation_record(row["conversation"], judged, position)}


def _conversation_record(turns: list[dict], judged: dict[tuple[int, int | None], dict], position: int) -> dict:
    messages, records = [], []
    for place, turn in enumerate(turns):
        message = {key: turn.get(key) for key in MESSAGE_KEYS}
        if turn["role"] == "assistant":
            verdict = dict(judged.get((position, place)) or _kept_as_written(rewritable(turns, place) or NOT_GENERATED))
            final = verdict.pop("final")
            message["content"] = turn["content"] if final is None else final
            records.append({"turn": place, "response": turn["content"], **verdict})
        messages.append(message)
    decisions = [record["decision"] for record in records]
    tokens = {
        "prompt_tokens": sum(record["prompt_tokens"] or 0 for record in records),
        "teacher_tokens": sum(record["teacher_tokens"] or 0 for record in records),
        **_attempt_totals(records),
    }
    empty = {"teacher_response": None, "teacher_reasoning": None, "extracted_answer": None, "finish_reason": None}
    if "dropped" in decisions:
        reason = next(record["reason"] for record in records if record["decision"] == "dropped")
        return {
            **empty,
            **tokens,
            "decision": "dropped",
            "reason": reason,
            "messages": None,
            "turns": records,
            "conversation": json.dumps(turns, ensure_ascii=False),
        }
    tried = [record for record in records if record["reason"] not in _NOT_TRIED]
    if "rewrite" in decisions:
        decision = "rewrite"
        reason = "ok" if all(record["decision"] == "rewrite" for record in tried) else PARTIAL_REWRITE
    else:
        decision = "original"
        reason = next((record["reason"] for record in tried), records[0]["reason"])
    return {**empty, **tokens, "decision": decision, "reason": reason, "messages": messages, "turns": records}


def _attempt_totals(records: list[dict]) -> dict:
    """A conversation's attempts (the most any turn took) and attempt tokens (all turns'), when counted."""
    counted = [record for record in records if record["attempts"] is not None]
    if not counted:
        return {"attempts": None, "attempt_tokens": None}
    return {
        "attempts": max(record["attempts"] for record in counted),
        "attempt_tokens": sum(record["attempt_tokens"] for record in counted),
    }


def _kept_as_written(reason: str) -> dict:
    return {
        "decision": "original",
        "reason": reason,
        "teacher_response": None,
        "teacher_reasoning": None,
        "extracted_answer": None,
        "finish_reason": None,
        "prompt_tokens": None,
        "teacher_tokens": 0,
        "attempts": None,
        "attempt_tokens": None,
        "final": None,
    }


def count_units(row: dict) -> int:
    """How many teacher requests a row makes."""
    return len(rewritable_turns(row))
