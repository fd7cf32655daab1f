"""What the customer should hear about an online order, told to the platform that sold it:
an outbox at HQ, written in the same transaction as the order change that caused it.

Why an outbox and not a call: a notification sent from inside an order transaction would be
sent for a change that may still roll back, and one sent after the commit is lost when HQ
stops in between. Here the order change and its notification commit together (every order
transaction ends in :meth:`hq.orders.Tx.flush`, which calls :func:`on_flush`), and the
platform reads them at its pace (``GET /orders/v1/notifications?after=<seq>``, and optionally
a webhook, :mod:`hq.webhooks`).

The facts come from the order's timeline entries of the transaction, so each fact is
notified exactly once, when it happens: a store accepted (``accepted``), a pickup is packed
(``ready_for_pickup``, with the pickup code and its QR), a parcel left (``shipped``, with the
courier's tracking number), the customer took it (``handed_over``), lines wait for stock
(``delayed``), the order was cancelled (``cancelled``) or a platform's cancel could not be
done (``cancel_refused``). A fulfilment says whether the order is complete and what is still
outstanding (a partial fulfilment).

Numbering: per platform, ``seq`` 1, 2, 3... in commit order, for the same reason as HQ's change
log (:mod:`hq.changelog`): a number taken from a sequence before the commit could become
visible after a higher one and a reader's cursor would skip it. Each transaction locks its
platforms' rows in ``platform_notify_heads`` (``FOR UPDATE``, in platform order, at the end of
the transaction), numbers its notifications after ``head`` and moves ``head``; the next
writer for that platform waits for the commit. A reader that sees seq N sees every seq below.
Each notification also has a ``notification_id`` (UUID) that never changes: delivery is at
least once, the platform drops the ones it already has."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import segno
from sqlalchemy import Connection, and_, func, select, update

from hq.db import (
    Database,
    assignment_lines,
    assignments,
    order_lines,
    platform_notifications,
    platform_notify_heads,
    stores,
)
from sync import protocol as p

if TYPE_CHECKING:
    from hq.orders import Tx

KINDS = (
    "accepted",
    "ready_for_pickup",
    "shipped",
    "handed_over",
    "delayed",
    "cancelled",
    "cancel_refused",
)
"""The notification kinds, in the words the platform shows the customer."""

MAX_FEED_PAGE = 500


def pickup_qr_png(order_id: str, code: str) -> str:
    """The customer's pickup QR as a PNG data URI: it encodes :func:`sync.protocol.pickup_qr`
    (``PICKUP:<order>:<code>``), the text the store's scanner reads as a pickup."""
    qr = segno.make(p.pickup_qr(order_id, code), error="m")
    return str(qr.png_data_uri(scale=6, border=4))


def on_flush(tx: Tx) -> None:
    """Called by every order transaction just before its timeline is written: settle the
    platform cancels the transaction decided, then turn its timeline entries into
    notifications, numbered per platform."""
    from hq import platform_orders

    notes: list[dict[str, Any]] = tx._notes  # the transaction's timeline entries, in order
    if not notes:
        return
    platform_orders.settle(tx, _order_ids(notes))
    made: list[dict[str, Any]] = []
    context: dict[str, dict[str, Any]] = {}
    for note in list(tx._notes):
        item = _from_note(tx, note, context)
        if item is not None:
            made.append(item)
    if made:
        store(tx.db, tx.conn, made, tx.now)


def _order_ids(notes: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(n["order_id"] for n in notes))


def _detail(note: dict[str, Any]) -> dict[str, Any]:
    raw = note.get("detail")
    return {} if not raw else dict(json.loads(raw))


def _from_note(
    tx: Tx, note: dict[str, Any], context: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    kind, order_id, store_id = note["kind"], note["order_id"], note["store_id"]
    o = tx.order(order_id)
    if o is None:
        return None
    detail = _detail(note)
    body: dict[str, Any]
    if kind == "accepted":
        body = {"store": _store(tx, store_id), "lines": _part_lines(tx, o, store_id, note)}
        kind_out = "accepted"
    elif kind == "ready":
        if o.delivery != "pickup" or o.pickup_code is None:
            return None  # a delivery order's parcel goes to the courier, not to the customer
        body = {
            "store": _store(tx, store_id),
            "pickup_code": o.pickup_code,
            "pickup_short_code": f"P{o.pickup_code}",
            "pickup_qr": p.pickup_qr(o.order_id, o.pickup_code),
            "pickup_qr_png": pickup_qr_png(o.order_id, o.pickup_code),
            "lines": _part_lines(tx, o, store_id, note),
        }
        kind_out = "ready_for_pickup"
    elif kind in ("shipped", "handed_over"):
        outstanding = _outstanding(tx, order_id, context)
        body = {
            "store": _store(tx, store_id),
            "lines": _named(tx, order_id, detail.get("lines", []), context),
            "order_complete": not outstanding,
            "outstanding": outstanding,
        }
        if kind == "shipped":
            body["tracking"] = detail.get("tracking")
        kind_out = kind
    elif kind == "backordered":
        lines = _named(tx, order_id, detail.get("lines", []), context)
        if _repeated_delay(tx, order_id, lines):
            return None
        ordered = sum(int(ln["qty"]) for ln in _order_lines(tx, order_id, context))
        body = {
            "lines": lines,
            "partial": sum(int(ln["qty"]) for ln in lines) < ordered,
            "retry_at": None if o.retry_at is None else o.retry_at.isoformat(),
        }
        kind_out = "delayed"
    elif kind == "cancelled" and store_id is None:  # the order (not one store's part)
        fulfilled = [
            {"line_id": ln["line_id"], "sku": ln["sku"], "name": ln["name"], "qty": ln["fulfilled"]}
            for ln in _order_lines(tx, order_id, context)
            if ln["fulfilled"] > 0
        ]
        body = {"reason": detail.get("reason"), "partial": bool(fulfilled), "fulfilled": fulfilled}
        kind_out = "cancelled"
    elif kind == "platform_cancel_refused":
        body = {
            "store": None if detail.get("store") is None else _store(tx, detail["store"]),
            "reason": detail.get("reason"),
        }
        kind_out = "cancel_refused"
    else:
        return None
    return {
        "platform": o.platform,
        "order_id": order_id,
        "kind": kind_out,
        "body": {
            "kind": kind_out,
            "order_id": order_id,
            "platform_order_id": o.platform_order_id,
            "at": note["at"].isoformat(),
            "order_state": o.state,
            **body,
        },
    }


def _store(tx: Tx, store_id: str | None) -> dict[str, Any] | None:
    if store_id is None:
        return None
    name = tx.conn.execute(select(stores.c.name).where(stores.c.store_id == store_id)).scalar()
    return {"store_id": store_id, "name": name}


def _part_lines(tx: Tx, o: Any, store_id: str | None, note: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of the store's part (the assignment under the note's epoch)."""
    rows = tx.conn.execute(
        select(
            assignment_lines.c.line_id,
            assignment_lines.c.sku,
            assignment_lines.c.qty,
            order_lines.c.name,
        )
        .select_from(
            assignments.join(
                assignment_lines, assignment_lines.c.assignment_id == assignments.c.id
            ).join(
                order_lines,
                and_(
                    order_lines.c.order_id == assignments.c.order_id,
                    order_lines.c.line_id == assignment_lines.c.line_id,
                ),
            )
        )
        .where(
            assignments.c.order_id == o.order_id,
            assignments.c.store_id == store_id,
            assignments.c.epoch == note["epoch"],
            assignment_lines.c.qty > 0,
        )
        .order_by(assignment_lines.c.line_id)
    )
    return [{"line_id": r.line_id, "sku": r.sku, "name": r.name, "qty": int(r.qty)} for r in rows]


def _order_lines(tx: Tx, order_id: str, context: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    cached = context.get(order_id)
    if cached is None:
        rows = [
            {
                "line_id": r.line_id,
                "sku": r.sku,
                "name": r.name,
                "qty": int(r.qty),
                "fulfilled": int(r.fulfilled),
            }
            for r in tx.conn.execute(select(order_lines).where(order_lines.c.order_id == order_id))
        ]
        rows.sort(key=lambda ln: (len(ln["line_id"]), ln["line_id"]))
        cached = context[order_id] = {"lines": rows}
    return list(cached["lines"])


def _named(
    tx: Tx, order_id: str, lines: list[dict[str, Any]], context: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    names = {ln["line_id"]: ln["name"] for ln in _order_lines(tx, order_id, context)}
    return [
        {
            "line_id": ln["line_id"],
            "sku": ln["sku"],
            "name": names.get(ln["line_id"]),
            "qty": int(ln["qty"]),
        }
        for ln in lines
    ]


def _outstanding(tx: Tx, order_id: str, context: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "line_id": ln["line_id"],
            "sku": ln["sku"],
            "name": ln["name"],
            "qty": ln["qty"] - ln["fulfilled"],
        }
        for ln in _order_lines(tx, order_id, context)
        if ln["qty"] > ln["fulfilled"]
    ]


def _repeated_delay(tx: Tx, order_id: str, lines: list[dict[str, Any]]) -> bool:
    """A backorder retried by the duty that still misses the same lines is no news."""
    if not any(n["order_id"] == order_id and n["kind"] == "retry" for n in tx._notes):
        return False
    last = tx.conn.execute(
        select(platform_notifications.c.body)
        .where(
            platform_notifications.c.order_id == order_id,
            platform_notifications.c.kind == "delayed",
        )
        .order_by(platform_notifications.c.seq.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return False
    before = [(ln["line_id"], ln["qty"]) for ln in json.loads(last)["lines"]]
    return before == [(ln["line_id"], ln["qty"]) for ln in lines]


def store(db: Database, conn: Connection, made: list[dict[str, Any]], now: Any) -> None:
    """Number the notifications per platform (head rows locked in platform order, so two
    transactions never wait on each other crosswise) and insert them."""
    by_platform: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in made:
        by_platform[item["platform"]].append(item)
    rows = []
    for platform in sorted(by_platform):
        head = _lock_head(db, conn, platform)
        for item in by_platform[platform]:
            head += 1
            nid = str(uuid.uuid4())
            body = {"notification_id": nid, "seq": head, **item["body"]}
            rows.append(
                {
                    "platform": platform,
                    "seq": head,
                    "notification_id": nid,
                    "order_id": item["order_id"],
                    "kind": item["kind"],
                    "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                    "created_at": now,
                }
            )
        conn.execute(
            update(platform_notify_heads)
            .where(platform_notify_heads.c.platform == platform)
            .values(head=head)
        )
    conn.execute(platform_notifications.insert(), rows)


def _lock_head(db: Database, conn: Connection, platform: str) -> int:
    stmt = db.lock_rows(
        select(platform_notify_heads.c.head).where(platform_notify_heads.c.platform == platform)
    )
    head = conn.execute(stmt).scalar()
    if head is None:  # the platform's first notification: make its row, then lock it
        db.upsert(conn, platform_notify_heads, [{"platform": platform}], ["platform"])
        head = conn.execute(stmt).scalar_one()
    return int(head)


# ---------------------------------------------------------------------------------------------
# reading


def feed(db: Database, platform: str, after: int, limit: int = 100) -> dict[str, Any]:
    """The platform's notifications after ``after`` (its cursor), oldest first. ``cursor`` is
    what to send next time; ``head`` is HQ's last number for the platform (a cursor above it
    means HQ was restored from an older backup: start again from ``head``)."""
    limit = max(1, min(limit, MAX_FEED_PAGE))
    with db.read() as conn:
        head = int(
            conn.execute(
                select(func.coalesce(func.max(platform_notify_heads.c.head), 0)).where(
                    platform_notify_heads.c.platform == platform
                )
            ).scalar_one()
        )
        rows = list(
            conn.execute(
                select(platform_notifications.c.seq, platform_notifications.c.body)
                .where(
                    and_(
                        platform_notifications.c.platform == platform,
                        platform_notifications.c.seq > after,
                        platform_notifications.c.seq <= head,
                    )
                )
                .order_by(platform_notifications.c.seq)
                .limit(limit + 1)
            )
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "notifications": [json.loads(r.body) for r in rows],
        "cursor": int(rows[-1].seq) if rows else min(after, head),
        "head": head,
        "has_more": more,
    }


def of_order(db: Database, order_id: str) -> list[dict[str, Any]]:
    """Every notification of one order, in order (for ``hq order show`` and tests)."""
    with db.read() as conn:
        return [
            json.loads(r.body)
            for r in conn.execute(
                select(platform_notifications.c.body)
                .where(platform_notifications.c.order_id == order_id)
                .order_by(platform_notifications.c.seq)
            )
        ]


__all__ = ["KINDS", "feed", "of_order", "on_flush", "pickup_qr_png", "store"]
