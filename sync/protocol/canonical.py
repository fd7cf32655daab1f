"""Canonical JSON and the payload hash: the bytes a store's outbox and HQ's ingest agree on.

A module of its own, with nothing but the standard library, so that the till's journal can hash
an event without loading the message models (pydantic costs about a tenth of a second at
start-up)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any, *, check_floats: bool = True) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is.

    Floats are refused (TypeError): money and quantities are integers everywhere, and a float
    has more than one spelling. A receiver re-hashing a payload it parsed from JSON may skip the
    walk that looks for them (``check_floats=False``) and refuse floats where its typed models
    read the payload."""
    if check_floats:
        _refuse_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_refuse
    )


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("not allowed in an event payload: float")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def _refuse(value: Any) -> Any:
    raise TypeError(f"not allowed in an event payload: {type(value).__name__}")


def payload_hash(payload: Any) -> str:
    """sha256 (hex) of the canonical JSON of a payload."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
