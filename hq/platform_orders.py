"""The e-commerce platform's calls about its own orders, by its own order id: the order's
status, and a cancel when the customer changed their mind.

A cancel follows HQ's one rule for taking goods back from a store (:mod:`hq.orders`): a part
no store has accepted yet is voided at once (its holds go, the store's row says cancelled); an
accepted part is only taken back when the store agrees, so HQ asks it (``cancel_requested``)
and the order waits in state ``cancelling`` — nothing re-dispatches it meanwhile. The outcome
is settled at the end of whichever transaction decides it (:func:`settle`, called from
:func:`hq.notify.on_flush`): every store agreed (or was forced, unreachable) -> ``cancelled``;
a store refused (already packed...) or handed the goods over first -> the order goes on and
the platform hears ``cancel_refused``. An order already handed over or shipped, even in
part, cannot be cancelled (409 ``already_fulfilled``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from hq import orders
from hq.db import Database, assignments, order_cancels, order_lines, utcnow
from hq.db import orders as orders_table
from hq.dispatch import OrderSettings
from hq.errors import HQError, NotFound

if TYPE_CHECKING:
    from hq.orders import Tx

PLATFORM_CANCEL = "cancelled at the platform's request"


class AlreadyFulfilled(HQError):
    """The goods (or some of them) already left the store: nothing to cancel."""

    status_code = 409
    code = "already_fulfilled"


class CancelRequest(BaseModel):
    """The optional body of ``POST /orders/v1/platform-orders/{id}/cancel``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


@dataclass(frozen=True)
class CancelResult:
    status: Literal["cancelled", "cancel_requested"]
    order_id: str
    waiting_for: tuple[str, ...] = ()
    """The stores HQ asked (an accepted part), whose answer decides."""


def find(conn: Connection, platform: str, platform_order_id: str) -> str:
    """HQ's order id of the platform's order; :class:`NotFound` for another platform's."""
    order_id = conn.execute(
        select(orders_table.c.order_id).where(
            orders_table.c.platform == platform,
            orders_table.c.platform_order_id == platform_order_id,
        )
    ).scalar()
    if order_id is None:
        raise NotFound(
            f"no order {platform_order_id} of {platform} at HQ; submit it first (POST /orders/v1)",
            {"platform_order_id": platform_order_id},
        )
    return str(order_id)


def cancel(
    db: Database,
    platform: str,
    platform_order_id: str,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    settings: OrderSettings | None = None,
) -> CancelResult:
    """Cancel the platform's order. Idempotent: a cancelled order answers ``cancelled``, one
    waiting for its stores ``cancel_requested`` (nothing is asked twice). Raises
    :class:`AlreadyFulfilled` once anything was handed over or shipped."""
    now = now or utcnow()
    with orders.transaction(db, now, settings) as tx:
        order_id = find(tx.conn, platform, platform_order_id)
        o = tx.order(order_id)
        if o.state == "cancelled":
            return CancelResult("cancelled", order_id)
        if o.state == "cancelling":
            waiting = tuple(a.store_id for a in orders._live(tx, order_id))
            return CancelResult("cancel_requested", order_id, waiting)
        gone = [
            {"line_id": r.line_id, "sku": r.sku, "qty": int(r.qty), "fulfilled": int(r.fulfilled)}
            for r in tx.conn.execute(
                select(order_lines)
                .where(order_lines.c.order_id == order_id, order_lines.c.fulfilled > 0)
                .order_by(order_lines.c.line_id)
            )
        ]
        if o.state == "completed" or gone:
            raise AlreadyFulfilled(
                f"order {platform_order_id} was already "
                + (
                    "handed over or shipped"
                    if o.state == "completed"
                    else "partly handed over or shipped"
                )
                + "; it cannot be cancelled (a return is a new matter for the store)",
                {"order_id": order_id, "state": o.state, "fulfilled_lines": gone},
            )
        tx.note(order_id, "platform_cancel_requested", None, None, reason=reason)
        waiting_for: list[str] = []
        for a in orders._live(tx, order_id):
            epoch = int(a.epoch)
            if a.state == "assigned":  # not accepted: taken back at once
                orders._end(tx, a, "voided")
                tx.note(order_id, "revoked", a.store_id, epoch)
            elif a.state == "cancel_requested":  # HQ asked already (to move it): now to cancel
                tx.conn.execute(
                    update(assignments).where(assignments.c.id == a.id).values(then="cancel")
                )
                waiting_for.append(a.store_id)
            else:
                orders._set_state(
                    tx,
                    a,
                    "cancel_requested",
                    prev_state=a.state,
                    cancel_requested_at=now,
                    then="cancel",
                )
                tx.note(order_id, "cancel_requested", a.store_id, epoch)
                waiting_for.append(a.store_id)
        db.upsert(
            tx.conn,
            order_cancels,
            [
                {
                    "order_id": order_id,
                    "platform": platform,
                    "state": "requested",
                    "reason": reason,
                    "outcome": None,
                    "requested_at": now,
                    "resolved_at": None,
                }
            ],
            ["order_id"],
        )
        tx.conn.execute(
            update(orders_table)
            .where(orders_table.c.order_id == order_id)
            .values(state="cancelling", retry_at=None)
        )
        tx.forget(order_id)
        # no store to wait for: settle() makes it cancelled before this transaction commits
    if waiting_for:
        return CancelResult("cancel_requested", order_id, tuple(waiting_for))
    return CancelResult("cancelled", order_id)


_FULFILMENT_NOTES = frozenset({"handed_over", "shipped", "completed"})


def settle(tx: Tx, order_ids: list[str]) -> None:
    """At the end of an order transaction: decide the platform cancels it settled."""
    for order_id in order_ids:
        o = tx.order(order_id)
        if o is None:
            continue
        if o.state == "cancelling":
            _settle_cancelling(tx, order_id)
        elif o.state == "completed" and _noted(tx, order_id, _FULFILMENT_NOTES):
            _resolve(tx, order_id, "refused", "the goods were handed over or shipped first")
        elif o.state == "cancelled" and _noted(tx, order_id, {"cancelled"}):
            _resolve(tx, order_id, "cancelled", "called off")


def _noted(tx: Tx, order_id: str, kinds: set[str] | frozenset[str]) -> bool:
    return any(n["order_id"] == order_id and n["kind"] in kinds for n in tx._notes)


def _settle_cancelling(tx: Tx, order_id: str) -> None:
    live = orders._live(tx, order_id)
    if any(a.state == "cancel_requested" for a in live):
        return  # a store has yet to answer
    if not live:  # every part voided, cancelled by its store, or forced
        tx.conn.execute(
            update(orders_table)
            .where(orders_table.c.order_id == order_id)
            .values(state="cancelled", retry_at=None)
        )
        tx.forget(order_id)
        asked = tx.conn.execute(
            select(order_cancels.c.reason).where(order_cancels.c.order_id == order_id)
        ).scalar()
        tx.note(
            order_id,
            "cancelled",
            None,
            None,
            reason=PLATFORM_CANCEL,
            **({"customer_reason": asked} if asked else {}),
        )
        _resolve(tx, order_id, "cancelled", PLATFORM_CANCEL)
        return
    # a store refused: its part went back to where it was, and the order goes on
    refusal = next(
        (
            n
            for n in reversed(tx._notes)
            if n["order_id"] == order_id and n["kind"] == "cancel_refused"
        ),
        None,
    )
    store_id = refusal["store_id"] if refusal else live[0].store_id
    why = (
        (json.loads(refusal["detail"]) or {}).get("reason")
        if refusal and refusal["detail"]
        else None
    )
    reason = f"store {store_id} refused to cancel" + (f": {why}" if why else "")
    tx.conn.execute(
        update(orders_table).where(orders_table.c.order_id == order_id).values(state="open")
    )
    tx.forget(order_id)
    tx.note(order_id, "platform_cancel_refused", None, None, store=store_id, reason=reason)
    _resolve(tx, order_id, "refused", reason, note=False)
    orders._resource(tx, order_id, why="the platform's cancel was refused")


def _resolve(tx: Tx, order_id: str, state: str, outcome: str, *, note: bool = True) -> None:
    """Close the platform's pending cancel of the order, if there is one."""
    done = tx.conn.execute(
        update(order_cancels)
        .where(order_cancels.c.order_id == order_id, order_cancels.c.state == "requested")
        .values(state=state, outcome=outcome, resolved_at=tx.now)
    )
    if done.rowcount and state == "refused" and note:
        tx.note(order_id, "platform_cancel_refused", None, None, store=None, reason=outcome)


# ---------------------------------------------------------------------------------------------
# status


def status(db: Database, platform: str, platform_order_id: str) -> dict[str, Any]:
    """The order as the platform sees it: HQ's view (lines, assignments, timeline), the
    customer-facing ``status`` and the last cancel the platform asked for."""
    with db.read() as conn:
        order_id = find(conn, platform, platform_order_id)
        asked = conn.execute(
            select(order_cancels).where(order_cancels.c.order_id == order_id)
        ).first()
    view = orders.view(db, order_id)
    view["status"] = customer_status(view)
    view["cancel"] = (
        None
        if asked is None
        else {
            "state": asked.state,
            "reason": asked.reason,
            "outcome": asked.outcome,
            "requested_at": asked.requested_at.isoformat(),
            "resolved_at": None if asked.resolved_at is None else asked.resolved_at.isoformat(),
        }
    )
    return view


def customer_status(view: dict[str, Any]) -> str:
    """One word for the customer: placed, accepted, ready_for_pickup, partially_fulfilled,
    delayed, completed, cancel_requested or cancelled."""
    state = view["state"]
    if state in ("cancelled", "completed"):
        return str(state)
    if state == "cancelling":
        return "cancel_requested"
    if any(ln["fulfilled"] > 0 for ln in view["lines"]):
        return "partially_fulfilled"
    if state == "backorder":
        return "delayed"
    live = [a["state"] for a in view["assignments"] if a["state"] in orders.LIVE]
    if "ready" in live:
        return "ready_for_pickup"
    if any(s in ("accepted", "picked", "cancel_requested") for s in live):
        return "accepted"
    return "placed"


__all__ = [
    "AlreadyFulfilled",
    "CancelRequest",
    "CancelResult",
    "cancel",
    "customer_status",
    "find",
    "settle",
    "status",
]
