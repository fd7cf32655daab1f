"""HQ's state read back for invariant checks (the sync state machine, end-to-end tests,
operators): the event log per device, stock from the projection and from the raw ledger, the
HQ-owned rows a store should hold. Read-only, except :func:`rebuild_on_hand`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from hq.changelog import snapshot_blocks, stream_head
from hq.db import Database, devices, events, sales, stock_ledger, stock_on_hand


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    event_id: str
    type: str
    status: str
    reason: str | None


def event_log(db: Database, store_id: str, device_id: str) -> list[LoggedEvent]:
    """Every event HQ processed for one device, in seq order (applied, rejected...)."""
    with db.read() as conn:
        pk = conn.execute(
            select(devices.c.id).where(
                devices.c.store_id == store_id, devices.c.device_id == device_id
            )
        ).scalar_one()
        return [
            LoggedEvent(int(r.seq), r.event_id, r.type, r.status, r.reason)
            for r in conn.execute(
                select(
                    events.c.seq, events.c.event_id, events.c.type, events.c.status, events.c.reason
                )
                .where(events.c.device_pk == pk)
                .order_by(events.c.seq)
            )
        ]


def last_applied_seq(db: Database, store_id: str, device_id: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(devices.c.last_applied_seq).where(
                    devices.c.store_id == store_id, devices.c.device_id == device_id
                )
            ).scalar_one()
        )


def on_hand(db: Database, store_id: str) -> dict[str, int]:
    """The on-hand projection of one store (SKUs with any movement)."""
    with db.read() as conn:
        return {
            r.sku: int(r.on_hand)
            for r in conn.execute(
                select(stock_on_hand.c.sku, stock_on_hand.c.on_hand).where(
                    stock_on_hand.c.store_id == store_id
                )
            )
        }


def ledger_on_hand(db: Database, store_id: str) -> dict[str, int]:
    """On-hand recomputed from the raw ledger: must equal :func:`on_hand`."""
    with db.read() as conn:
        return {
            r.sku: int(r.total)
            for r in conn.execute(
                select(stock_ledger.c.sku, func.sum(stock_ledger.c.delta).label("total"))
                .where(stock_ledger.c.store_id == store_id)
                .group_by(stock_ledger.c.sku)
            )
        }


def sale_ids(db: Database, store_id: str) -> set[str]:
    with db.read() as conn:
        return {
            r[0] for r in conn.execute(select(sales.c.sale_id).where(sales.c.store_id == store_id))
        }


def rebuild_on_hand(db: Database) -> None:
    """Recompute the whole on-hand projection from the ledger, in one transaction."""
    with db.write() as conn:
        conn.execute(delete(stock_on_hand))
        rows = [
            {"store_id": r.store_id, "sku": r.sku, "on_hand": int(r.total)}
            for r in conn.execute(
                select(
                    stock_ledger.c.store_id,
                    stock_ledger.c.sku,
                    func.sum(stock_ledger.c.delta).label("total"),
                ).group_by(stock_ledger.c.store_id, stock_ledger.c.sku)
            )
        ]
        db.bulk_insert(conn, stock_on_hand, rows)


def stream_state(db: Database, stream: str, store_id: str) -> tuple[int, dict[str, Any]]:
    """(head cursor, key -> row) of a stream as a store should hold it once up to date."""
    with db.read(snapshot=True) as conn:
        head = stream_head(conn, stream, store_id)[0]
        state: dict[str, Any] = {}
        for _count, block in snapshot_blocks(db, conn, stream, store_id, None):
            for line in block.splitlines():
                item = json.loads(line)
                state[item["key"]] = item["row"]
    return head, state
