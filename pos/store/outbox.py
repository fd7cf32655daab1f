"""The outbox: every fact this till must tell HQ, in a gap-free per-device sequence.

`append` runs inside the caller's transaction, so an event exists if and only if the change it
describes was committed. The seq comes from a counter in the device row that rolls back with the
transaction, so a failed sale never leaves a hole in the sequence HQ checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pos.store._conn import DbLike, connection
from pos.store.errors import StoreNotInitialisedError
from sync.protocol.canonical import canonical_json, payload_hash

STATES = ("pending", "acked", "rejected", "superseded")


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    seq: int
    event_id: str
    device_id: str
    type: str
    schema_version: int
    occurred_at: str
    payload: str  # canonical JSON, exactly the bytes the hash was taken over
    payload_hash: str
    state: str
    attempts: int


def append(
    db: DbLike,
    type: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    schema_version: int = 1,
    event_id: str | None = None,
) -> tuple[int, str]:
    """Add one event; returns (seq, event_id). Must be called inside a transaction."""
    conn = connection(db)
    if not conn.in_transaction:
        raise RuntimeError("outbox.append must run inside the caller's transaction")
    if now.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    row = conn.execute(
        "UPDATE device SET next_seq = next_seq + 1 WHERE id = 1 RETURNING next_seq - 1, device_id"
    ).fetchone()
    if row is None:
        raise StoreNotInitialisedError("This till has no device identity; run `pos init` first.")
    seq, device_id = row
    event_id = event_id or str(uuid.uuid4())
    body = canonical_json(payload)
    conn.execute(
        "INSERT INTO outbox (seq, event_id, device_id, type, schema_version, occurred_at,"
        " payload, payload_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            event_id,
            device_id,
            type,
            schema_version,
            now.isoformat(timespec="milliseconds"),
            body,
            payload_hash(payload),
        ),
    )
    return seq, event_id


_COLUMNS = (
    "seq, event_id, device_id, type, schema_version, occurred_at, payload, payload_hash,"
    " state, attempts"
)


def pending(db: DbLike, limit: int = 500, after_seq: int = 0) -> list[OutboxEvent]:
    """The oldest pending events in seq order (a push batch)."""
    rows = connection(db).execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    )
    return [OutboxEvent(*row) for row in rows]


def get(db: DbLike, seq: int) -> OutboxEvent | None:
    row = connection(db).execute(f"SELECT {_COLUMNS} FROM outbox WHERE seq = ?", (seq,)).fetchone()
    return OutboxEvent(*row) if row else None


def depth(db: DbLike) -> int:
    """Events not yet accepted by HQ (for the status bar)."""
    row = connection(db).execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
    return int(row[0])


def last_seq(db: DbLike) -> int:
    row = connection(db).execute("SELECT max(seq) FROM outbox").fetchone()
    return int(row[0] or 0)
