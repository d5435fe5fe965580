"""Hugging Face Hub reachability, checked once up front instead of through minutes of retries."""

from __future__ import annotations

import os
import socket
from functools import cache
from urllib.parse import urlparse

from sdd_data.errors import SddError


def hub_endpoint() -> str:
    """The Hub address in use (`HF_ENDPOINT`, else huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether the user asked for offline mode (only the local cache is used)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(text: str, file_suffixes: frozenset[str] = frozenset()) -> bool:
    """True for strings meant as local paths rather than Hub ids (`name` or `org/name`).

    Explicit paths (`/x`, `./x`, `../x`, `~/x`, `.`), strings with more than one slash and names
    ending in one of `file_suffixes` (like `.jsonl` for data files) are paths.
    """
    if text.startswith(("/", "./", "../", "~")) or text in {".", ".."} or text.count("/") > 1:
        return True
    return any(text.lower().endswith(suffix) for suffix in file_suffixes)


@cache
def _can_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_address() -> tuple[str, int]:
    """The Hub endpoint's host and port; one clear error when HF_ENDPOINT is not an http(s) address."""
    endpoint = hub_endpoint()
    address = urlparse(endpoint)
    try:
        port = address.port
    except ValueError:  # a port that is not a number
        port = -1
    if address.scheme not in ("http", "https") or not address.hostname or port == -1:
        raise SddError(
            f"HF_ENDPOINT is {endpoint!r}, which is not an http(s) address like https://huggingface.co; fix or unset it"
        )
    return address.hostname, port or (443 if address.scheme == "https" else 80)


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within `timeout` seconds (checked once per process)."""
    host, port = hub_address()
    return _can_connect(host, port, timeout)


def ensure_hub_reachable(what: str, timeout: float = 5.0) -> None:
    """Raise one clear error when the Hub cannot be reached to fetch `what` (skipped in offline mode)."""
    if not hub_offline() and not hub_reachable(timeout):
        raise SddError(
            f"the Hugging Face Hub ({hub_endpoint()}) is unreachable, so {what} cannot be downloaded; "
            "use a local path, or set HF_HUB_OFFLINE=1 to use what is already in the local cache"
        )


def public_name(name: str) -> str:
    """A model or dataset name fit to publish: a Hub id or short name as is, a local path by its folder name only."""
    from pathlib import Path

    return Path(name).name if name.startswith(("/", ".", "~")) or Path(name).exists() else name
