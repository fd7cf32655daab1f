"""The stock ledger: append-only movements, and the on-hand projection that follows it.

On-hand is the sum of the ledger. The stock_on_hand table only caches that sum; a trigger keeps
it in the same transaction as each movement and `rebuild_on_hand` recomputes it from scratch."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from pos.store._conn import DbLike, atomic, connection


@dataclass(frozen=True, slots=True)
class Movement:
    sku: str
    delta: int
    reason: str  # 'sale', 'import', 'initial', 'receipt', 'waste', 'adjustment', 'pick', ...
    occurred_at: str  # ISO-8601 with offset
    movement_id: str = ""
    ref_event_id: str | None = None
    order_id: str | None = None
    epoch: int | None = None


def new_movement_id() -> str:
    return str(uuid.uuid4())


def record(db: DbLike, movements: Iterable[Movement]) -> list[str]:
    """Append movements (inside the caller's transaction); returns their movement ids."""
    conn = connection(db)
    rows = []
    ids = []
    for m in movements:
        if isinstance(m.delta, bool) or not isinstance(m.delta, int):
            raise TypeError(f"a stock delta is an int, got {m.delta!r}")
        movement_id = m.movement_id or new_movement_id()
        ids.append(movement_id)
        rows.append(
            (
                movement_id,
                m.sku,
                m.delta,
                m.reason,
                m.ref_event_id,
                m.order_id,
                m.epoch,
                m.occurred_at,
            )
        )
    conn.executemany(
        "INSERT INTO stock_ledger (movement_id, sku, delta, reason, ref_event_id, order_id,"
        " epoch, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return ids


def on_hand(db: DbLike, sku: str) -> int:
    row = connection(db).execute("SELECT on_hand FROM stock_on_hand WHERE sku = ?", (sku,))
    found = row.fetchone()
    return int(found[0]) if found else 0


def on_hand_many(db: DbLike, skus: Iterable[str]) -> dict[str, int]:
    conn = connection(db)
    result = {}
    for sku in skus:
        found = conn.execute("SELECT on_hand FROM stock_on_hand WHERE sku = ?", (sku,)).fetchone()
        result[sku] = int(found[0]) if found else 0
    return result


def ledger_sum(db: DbLike, sku: str) -> int:
    """On-hand recomputed from the ledger itself (for checks; the projection is the fast path)."""
    row = (
        connection(db)
        .execute("SELECT coalesce(sum(delta), 0) FROM stock_ledger WHERE sku = ?", (sku,))
        .fetchone()
    )
    return int(row[0])


def rebuild_on_hand(db: DbLike) -> int:
    """Recompute the whole on-hand projection from the ledger (inside the caller's transaction
    if one is open). Returns the number of SKUs with a ledger."""
    with atomic(connection(db)) as conn:
        conn.execute("DELETE FROM stock_on_hand")
        cursor = conn.execute(
            "INSERT INTO stock_on_hand (sku, on_hand)"
            " SELECT sku, sum(delta) FROM stock_ledger GROUP BY sku"
        )
        return cursor.rowcount
