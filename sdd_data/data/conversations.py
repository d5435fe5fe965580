"""Chat conversations: read the `messages` and ShareGPT layouts into one normalized list of turns, and check them.

A normalized turn is `{"role", "content", "tool_calls", "tool_call_id", "name"}` with roles `system`, `user`,
`assistant` and `tool`. Values are kept exactly as written: `content` is the source text (a list of text parts
becomes their texts joined by a newline), `tool_calls` is the source's calls as JSON text (or None), and
`tool_call_id` and `name` are kept when the source gives them. A conversation that cannot be read or that
breaks the turn order is refused with one machine-readable reason, and the other conversations go on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function_response": "tool",
}
"""ShareGPT `from` values -> roles. A `function_call` turn is an assistant turn whose value is its call."""

MEDIA_PARTS = ("image", "image_url", "audio", "video")
"""Content part types refused by name (`image_part`, …): the teacher reads text only."""
TOOL_CALL = "tool_call"
"""Reason of an assistant turn that calls a tool: it is kept as written, never rewritten."""
AFTER_TOOL = "after_tool_result"
"""Reason of an assistant turn that answers a tool result rather than a user: kept as written."""


class ConversationError(ValueError):
    """A conversation that cannot be used; `reason` is its machine-readable cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(content: object) -> str:
    """A turn's text: a string as it is, or the texts of a list of text parts joined by a newline."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, Mapping):
                raise ConversationError("malformed_content_part")
            kind = part.get("type", "text")
            if kind != "text":
                raise ConversationError(f"{kind}_part" if kind in MEDIA_PARTS else "non_text_part")
            if not isinstance(part.get("text"), str):
                raise ConversationError("malformed_content_part")
            texts.append(part["text"])
        return "\n".join(texts)
    if content is None:
        return ""
    raise ConversationError("content_not_string")


def _tool_calls(calls: object) -> str | None:
    """The source's tool calls as JSON text (None when there are none)."""
    if calls is None or calls == []:
        return None
    if isinstance(calls, str):
        return calls
    return json.dumps(calls, ensure_ascii=False)


def _optional_text(message: Mapping, key: str) -> str | None:
    value = message.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConversationError(f"{key}_not_string")


def from_messages(messages: object) -> list[dict]:
    """A `messages` conversation (`role`/`content`, optional `tool_calls`) as normalized turns, checked."""
    if not isinstance(messages, list) or not messages:
        raise ConversationError("malformed_conversation")
    turns = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise ConversationError("malformed_conversation")
        role = message.get("role")
        if role not in ROLES:
            raise ConversationError("unknown_role")
        turns.append(
            {
                "role": role,
                "content": _text(message.get("content")),
                "tool_calls": _tool_calls(message.get("tool_calls")) if role == "assistant" else None,
                "tool_call_id": _optional_text(message, "tool_call_id"),
                "name": _optional_text(message, "name"),
            }
        )
    check_turn_order(turns)
    return turns


def from_sharegpt(conversation: object) -> list[dict]:
    """A ShareGPT conversation (`from`/`value`) as normalized turns, checked."""
    if not isinstance(conversation, list) or not conversation:
        raise ConversationError("malformed_conversation")
    turns = []
    for message in conversation:
        if not isinstance(message, Mapping):
            raise ConversationError("malformed_conversation")
        speaker = message.get("from")
        role = SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise ConversationError("unknown_role")
        value = _text(message.get("value"))
        calls = value if speaker.lower() == "function_call" else None
        turns.append(
            {
                "role": role,
                "content": "" if calls is not None else value,
                "tool_calls": calls,
                "tool_call_id": None,
                "name": _optional_text(message, "name"),
            }
        )
    check_turn_order(turns)
    return turns


def check_turn_order(turns: list[dict]) -> None:
    """Refuse a conversation whose turns break chat order: the first reason found, as a ConversationError."""
    previous = None
    for position, turn in enumerate(turns):
        role = turn["role"]
        if role == "system" and position > 0:
            raise ConversationError("system_not_first")
        if not turn["content"].strip() and not (role == "assistant" and turn["tool_calls"]):
            raise ConversationError("empty_turn")
        if role == "assistant" and previous in (None, "system"):
            raise ConversationError("starts_with_assistant")
        if role == "user" and previous == "user":
            raise ConversationError("consecutive_user_turns")
        if role == "assistant" and previous == "assistant" and not turns[position - 1]["tool_calls"]:
            raise ConversationError("consecutive_assistant_turns")
        if role == "tool" and not _call_before(turns, position):
            raise ConversationError("tool_without_call")
        previous = role
    if not any(turn["role"] == "assistant" for turn in turns):
        raise ConversationError("no_assistant_turn")


def _call_before(turns: list[dict], position: int) -> bool:
    """Whether a tool turn answers an assistant tool call (earlier tool turns may answer the same call)."""
    for earlier in reversed(turns[:position]):
        if earlier["role"] == "tool":
            continue
        return earlier["role"] == "assistant" and bool(earlier["tool_calls"])
    return False


def is_single_exchange(turns: list[dict]) -> bool:
    """One user turn and its plain assistant answer, nothing else: read as a single-turn row."""
    return (
        len(turns) == 2
        and [turn["role"] for turn in turns] == ["user", "assistant"]
        and not turns[1]["tool_calls"]
        and turns[0]["name"] is None
        and turns[1]["name"] is None
    )


def rewritable(turns: list[dict], position: int) -> str | None:
    """None when the assistant turn at `position` answers a user (the teacher rewrites it), else why it is kept."""
    turn = turns[position]
    if turn["tool_calls"]:
        return TOOL_CALL
    if turns[position - 1]["role"] == "tool":
        return AFTER_TOOL
    return None


def chat_messages(turns: list[dict]) -> list[dict]:
    """Turns as chat-template messages: tool calls decoded back to structures, absent keys left out."""
    messages = []
    for turn in turns:
        message: dict = {"role": turn["role"], "content": turn["content"]}
        if turn.get("tool_calls"):
            try:
                message["tool_calls"] = json.loads(turn["tool_calls"])
            except ValueError:
                message["tool_calls"] = turn["tool_calls"]
        for key in ("tool_call_id", "name"):
            if turn.get(key) is not None:
                message[key] = turn[key]
        messages.append(message)
    return messages


def transcript(turns: list[dict]) -> str:
    """The turns as plain text, one `Role: text` paragraph each (for templates that are not chat templates)."""
    lines = []
    for turn in turns:
        text = turn["content"] if not turn.get("tool_calls") else f"{turn['content']}\n[tool call] {turn['tool_calls']}"
        lines.append(f"{turn['role'].capitalize()}: {text.strip()}")
    return "\n\n".join(lines)
