"""Messages exchanged by stores and HQ: no I/O, used by both ends.

The event envelope and its hashing live here so that the store's outbox and HQ's ingest agree
on the bytes a payload hash is taken over."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PROTOCOL_VERSION = 1


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is.

    Floats are refused: money and quantities are integers everywhere."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_refuse
    )


def _refuse(value: Any) -> Any:
    raise TypeError(f"not allowed in an event payload: {type(value).__name__}")


def payload_hash(payload: Any) -> str:
    """sha256 (hex) of the canonical JSON of a payload."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
