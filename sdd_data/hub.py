"""Hugging Face Hub reachability, checked once up front instead of through minutes of retries."""

from __future__ import annotations

import os
import socket
from functools import cache
from urllib.parse import urlparse

from .errors import SddError


def hub_endpoint() -> str:
    """The Hub address in use (`HF_ENDPOINT`, else huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether the user asked for offline mode (only the local cache is used)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@cache
def _can_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_hub_reachable(what: str, timeout: float = 5.0) -> None:
    """Raise one clear error when the Hub cannot be reached to fetch `what` (skipped in offline mode)."""
    if hub_offline():
        return
    address = urlparse(hub_endpoint())
    port = address.port or (443 if address.scheme == "https" else 80)
    if not _can_connect(address.hostname or "", port, timeout):
        raise SddError(
            f"the Hugging Face Hub ({hub_endpoint()}) is unreachable, so {what} cannot be downloaded; "
            "use a local path, or set HF_HUB_OFFLINE=1 to use what is already in the local cache"
        )
