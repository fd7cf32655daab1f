"""The store's use cases for online orders: answer, pick by scan, pack, hand over or ship, answer
HQ's cancel requests, put picked goods back, and ask HQ for a delivery order from the till
(endless aisle).

Each step is ONE transaction: the order's new stage (moved by the transition table of
pos.domain.orders), its holds, any stock movements, and the outbox event for HQ carrying the
epoch the store acted under. Every step works offline: the event waits in the outbox, and if
HQ had meanwhile given the order to another store it answers ``superseded`` (stock movements
still count); the inbox shows those answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from pos.domain import orders as rules
from pos.domain.cart import Product
from pos.domain.gtin import lookup_key
from pos.domain.orders import (
    OrderError,
    OrderStateError,
    PickLine,
    PickupCodeError,
    WrongItemError,
)
from pos.store import Store, catalog, outbox, stock
from pos.store import orders as store_orders
from pos.store.orders import Step, StoredOrder, Task
from sync import protocol as p

Clock = Callable[[], datetime]
PICK_QTY_SETTING = "orders.pick_qty_entry"
"""Store setting: "1" lets staff type a picked quantity instead of scanning every unit."""
STORE_LAT, STORE_LON = "store.lat", "store.lon"
"""Store settings: the store's own coordinates (an endless-aisle address without coordinates
is dispatched from here)."""

__all__ = [
    "OrderCard",
    "OrderError",
    "OrderService",
    "OrderStateError",
    "PickResult",
    "PickupCodeError",
    "WrongItemError",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LineStock:
    line: PickLine
    on_hand: int
    available: int  # on hand minus every pending hold (this order's included)


@dataclass(frozen=True, slots=True)
class OrderCard:
    """One order as the inbox shows it: lines with the store's stock, open tasks, steps."""

    order: StoredOrder
    lines: tuple[LineStock, ...]
    tasks: tuple[Task, ...]
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class PickResult:
    line: PickLine  # the line after the scan
    done: bool  # every line complete


@dataclass(frozen=True, slots=True)
class Inbox:
    orders: tuple[StoredOrder, ...]
    tasks: tuple[Task, ...]
    troubled: tuple[Step, ...]  # steps HQ answered superseded or refused
    new: int


class OrderService:
    """Online orders over one open store (same thread as the store)."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now

    # -- reading -------------------------------------------------------------------------------

    def inbox(self, *, closed: bool = True) -> Inbox:
        db = self.store.conn
        return Inbox(
            orders=tuple(store_orders.listing(db, closed=closed)),
            tasks=tuple(store_orders.open_tasks(db)),
            troubled=tuple(store_orders.troubled_steps(db)),
            new=store_orders.new_count(db),
        )

    def new_count(self) -> int:
        return store_orders.new_count(self.store.conn)

    def get(self, order_id: str) -> StoredOrder:
        order = store_orders.get(self.store.conn, order_id)
        if order is None:
            raise OrderError(f"There is no online order {order_id} at this store.")
        return order

    def card(self, order_id: str) -> OrderCard:
        db = self.store.conn
        order = self.get(order_id)
        skus = {ln.wanted_sku for ln in order.lines}
        on_hand = stock.on_hand_many(db, skus)
        held = store_orders.held_many(db, skus)
        return OrderCard(
            order=order,
            lines=tuple(
                LineStock(ln, on_hand[ln.wanted_sku], on_hand[ln.wanted_sku] - held[ln.wanted_sku])
                for ln in order.lines
            ),
            tasks=tuple(store_orders.open_tasks(db, order_id)),
            steps=tuple(store_orders.steps(db, order_id)),
        )

    def pick_list(self, order_id: str) -> tuple[PickLine, ...]:
        """The order's lines in walking order (see pos.domain.orders.walk_order)."""
        return rules.walk_order(ln for ln in self.get(order_id).lines if ln.qty > 0)

    def qty_entry_allowed(self) -> bool:
        value = (self.store.get_config(PICK_QTY_SETTING) or "").strip().lower()
        return value in ("1", "true", "yes", "on")

    def mark_seen(self, order_id: str) -> None:
        with self.store.transaction() as conn:
            store_orders.mark_seen(conn, order_id, self._now())

    # -- answering -----------------------------------------------------------------------------

    def accept(self, order_id: str) -> StoredOrder:
        """Accept: hold the stock for the order's lines and tell HQ."""
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._must_be_ours(order)
            stage = rules.advance(order.stage, "accept")
            store_orders.set_stage(conn, order, stage, now)
            store_orders.make_holds(conn, order, now)
            self._emit(conn, order, p.ORDER_ACCEPTED, {}, now)
        return self.get(order_id)

    def reject(self, order_id: str, reason: str, note: str | None = None) -> StoredOrder:
        """Say no, with a reason code HQ knows; nothing stays held."""
        if reason not in rules.REJECT_REASONS:
            raise OrderError(
                "Choose why the order is rejected: " + ", ".join(rules.REJECT_REASONS.values())
            )
        note = (note or "").strip()[:500] or None
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._must_be_ours(order)
            if order.picked_units:
                raise OrderStateError(
                    f"{order.picked_units} unit(s) of this order are already picked. Put them "
                    "back first, or confirm a short pick instead."
                )
            stage = rules.advance(order.stage, "reject")
            store_orders.set_stage(conn, order, stage, now)
            store_orders.void_holds(conn, order.order_id, now)
            extra: dict[str, Any] = {"reason": reason}
            if note:
                extra["note"] = note
            self._emit(conn, order, p.ORDER_REJECTED, extra, now)
        return self.get(order_id)

    # -- picking -------------------------------------------------------------------------------

    def lookup(self, code: str) -> Product | None:
        key = lookup_key(code)
        if not key:
            return None
        product = catalog.find_by_code(self.store.conn, key)
        if product is None:
            product = catalog.find_by_sku(self.store.conn, code.strip())
        return product

    def pick_scan(self, order_id: str, code: str) -> PickResult:
        """One scanned unit: counted on the line that wants it, or refused (wrong item, or all
        of it already picked). The count is saved at once (a restart keeps the progress)."""
        product = self.lookup(code)
        if product is None:
            raise WrongItemError(
                f"Code {code} is not in the catalogue. It is not on this order: put it back."
            )
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._picking(order)
            line = rules.match_scan(
                [ln for ln in order.lines if ln.qty > 0], product.sku, product.name
            )
            lines = rules.count_unit(order.lines, line.line_id)
            counted = next(ln for ln in lines if ln.line_id == line.line_id)
            store_orders.save_line(conn, order_id, counted)
        return PickResult(counted, all(ln.remaining == 0 for ln in lines))

    def set_picked(self, order_id: str, line_id: str, qty: int) -> PickLine:
        """Type a picked quantity (only where the store's setting allows it)."""
        if not self.qty_entry_allowed():
            raise OrderError(
                "Each unit must be scanned here. (Typing quantities is switched off for this "
                f"store: setting {PICK_QTY_SETTING}.)"
            )
        if isinstance(qty, bool) or not isinstance(qty, int):
            raise TypeError("a picked quantity is an int")
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._picking(order)
            line = self._line(order, line_id)
            if not 0 <= qty <= line.qty:
                raise WrongItemError(f"{line.name}: pick between 0 and {line.qty}.")
            line = replace(line, picked=qty)
            store_orders.save_line(conn, order_id, line)
        return line

    def substitute(self, order_id: str, line_id: str, code: str, reason: str) -> PickLine:
        """Fulfil a line with another item (the customer's stated preference, or a manager's
        call); units of the substitute are then scanned for it. A reason is required."""
        reason = reason.strip()
        if not reason:
            raise OrderError("Say why the item is substituted (e.g. 'out of stock, same size').")
        product = self.lookup(code)
        if product is None:
            raise WrongItemError(f"Code {code} is not in the catalogue; scan the substitute item.")
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._picking(order)
            line = self._line(order, line_id)
            if product.sku == line.sku:
                raise WrongItemError(f"{product.name} is the ordered item itself: just scan it.")
            if line.picked:
                raise OrderStateError(
                    f"{line.picked} of {line.name} are already picked for this line. A line is "
                    "either the ordered item or one substitute: put them back first."
                )
            line = replace(line, substitute_sku=product.sku, reason=reason[:200])
            store_orders.save_line(conn, order_id, line)
        return line

    def confirm_pick(self, order_id: str, reasons: Mapping[str, str] | None = None) -> StoredOrder:
        """Picking is done: tell HQ what was picked per line (a short line needs a reason; HQ
        finds the rest elsewhere). The holds now cover exactly what was picked."""
        reasons = dict(reasons or {})
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._must_be_ours(order)
            lines = [ln for ln in order.lines if ln.qty > 0]
            if not lines:
                raise OrderStateError("Nothing is left to pick on this order.")
            missing = rules.missing_reasons(lines, reasons)
            if missing:
                raise OrderError(
                    "Say why these lines are short: "
                    + ", ".join(f"{ln.name} ({ln.picked} of {ln.qty})" for ln in missing)
                )
            stage = rules.advance(order.stage, "pick")
            for ln in lines:
                if ln.short and reasons.get(ln.line_id):
                    store_orders.save_line(
                        conn, order_id, replace(ln, reason=reasons[ln.line_id].strip()[:200])
                    )
            order = self._load(conn, order_id)
            store_orders.holds_to_pick(conn, order, now)
            store_orders.set_stage(conn, order, stage, now)
            picked = []
            for ln in order.lines:
                if ln.qty <= 0:
                    continue
                item: dict[str, Any] = {
                    "line_id": ln.line_id,
                    "sku": ln.sku,
                    "qty_ordered": ln.qty,
                    "qty_picked": ln.picked,
                }
                if ln.substitute_sku:
                    item["substitute_sku"] = ln.substitute_sku
                if ln.reason and (ln.short or ln.substitute_sku):
                    item["reason"] = ln.reason
                picked.append(item)
            self._emit(conn, order, p.ORDER_PICKED, {"lines": picked}, now)
        return self.get(order_id)

    # -- packing and handing over --------------------------------------------------------------

    def ready(self, order_id: str) -> StoredOrder:
        """Packed and waiting for the customer (pickup orders): HQ tells the customer."""
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._must_be_ours(order)
            if order.delivery != "pickup":
                raise OrderStateError(
                    "This order is for delivery: scan the courier's tracking label to ship it."
                )
            if order.stage == "picked" and not order.picked_units:
                raise OrderStateError(
                    "Nothing was picked for this order; there is nothing to pack."
                )
            stage = rules.advance(order.stage, "ready")
            store_orders.set_stage(conn, order, stage, now)
            self._emit(conn, order, p.ORDER_READY, {}, now)
        return self.get(order_id)

    def ship(self, order_id: str, tracking: str) -> StoredOrder:
        """The courier took the parcel (its tracking label scanned): stock moves now."""
        tracking = tracking.strip()
        if not tracking or len(tracking) > 128:
            raise OrderError("Scan the courier's tracking label (1-128 characters).")
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            self._must_be_ours(order)
            if order.delivery != "delivery":
                raise OrderStateError(
                    "This is a pickup order: mark it ready and hand it over to the customer."
                )
            stage = rules.advance(order.stage, "ship")
            self._fulfil(conn, order, stage, p.ORDER_SHIPPED, {"tracking": tracking}, now)
        return self.get(order_id)

    def find_pickup(self, code: str, order_id: str | None = None) -> StoredOrder:
        """The order a customer's pickup code (typed short code, or the QR's order id and
        code) stands for, checked against the hash the store keeps: works offline. Raises
        PickupCodeError for a wrong or used code, OrderStateError when not ready yet."""
        code = code.strip()
        if code[:1] in ("P", "p") and code[1:].isdigit():
            code = code[1:]
        if not code.isdigit() or not 4 <= len(code) <= 10:
            raise PickupCodeError(
                f"{code or 'That'} is not a pickup code (the customer's code is 6 digits)."
            )
        digest = p.pickup_code_hash(code)
        if order_id is not None:
            order = store_orders.get(self.store.conn, order_id)
            if order is None or order.pickup_code_hash is None:
                raise PickupCodeError(
                    f"Order {order_id} is not a pickup order of this store. Nothing was handed "
                    "over: check the store on the customer's order."
                )
            if order.pickup_code_hash != digest:
                raise PickupCodeError(
                    f"Wrong pickup code for order {order_id}. Nothing was handed over: ask the "
                    "customer for the code in their order."
                )
            self._can_hand_over(order)
            return order
        found = store_orders.find_by_code_hash(self.store.conn, digest)
        if not found:
            raise PickupCodeError(
                f"No order here has pickup code {code}. Nothing was handed over: check the "
                "number, or scan the customer's QR code."
            )
        ready = [o for o in found if o.stage == "ready" and o.assignment not in _GONE]
        if len(ready) > 1:
            raise PickupCodeError(
                "Two orders ready here share this short code: scan the customer's QR code."
            )
        if ready:
            return ready[0]
        self._can_hand_over(found[0])
        return found[0]

    def ready_with_code(self, code: str) -> list[StoredOrder]:
        """Orders ready for pickup here (and still this store's) whose pickup code is ``code``:
        what the sale screen asks of a bare code before looking it up as a product. Empty for
        anything that is not a pickup code; never raises for odd input."""
        code = code.strip()
        if not code.isdigit() or not 4 <= len(code) <= 10:
            return []
        found = store_orders.find_by_code_hash(self.store.conn, p.pickup_code_hash(code))
        return [o for o in found if o.stage == "ready" and o.assignment not in _GONE]

    def hand_over(self, order_id: str, code: str) -> StoredOrder:
        """The customer takes the order: the code is checked again, stock moves, holds are
        posted and HQ is told, in one transaction."""
        now = self._now()
        checked = self.find_pickup(code, order_id)
        with self.store.transaction() as conn:
            order = self._load(conn, checked.order_id)
            self._can_hand_over(order)
            stage = rules.advance(order.stage, "hand_over")
            self._fulfil(conn, order, stage, p.ORDER_HANDED_OVER, {}, now)
        return self.get(order_id)

    # -- HQ's cancel requests and the return-to-shelf tasks ---------------------------------------

    def answer_cancel(self, order_id: str, agree: bool, reason: str = "") -> StoredOrder:
        """HQ asked to cancel an accepted order: agree (holds voided, picked goods go back to
        the shelf) or refuse with a reason (e.g. already packed)."""
        now = self._now()
        with self.store.transaction() as conn:
            order = self._load(conn, order_id)
            asked = [
                t
                for t in store_orders.open_tasks(conn, order_id)
                if t.kind == "answer_cancel" and t.epoch == order.epoch
            ]
            if order.assignment != "cancel_requested" or not asked:
                raise OrderStateError(
                    "HQ has not asked to cancel this order (or it was answered already)."
                )
            if agree:
                stage = rules.advance(order.stage, "cancel_accept")
                store_orders.void_holds(conn, order_id, now)
                store_orders.return_to_shelf(conn, order, now, "the store agreed to cancel")
                store_orders.set_stage(conn, order, stage, now)
                self._emit(conn, order, p.ORDER_CANCEL_ACCEPTED, {}, now)
            else:
                reason = reason.strip()
                if not reason:
                    raise OrderError("Say why the order cannot be cancelled (e.g. already packed).")
                rules.advance(order.stage, "cancel_refuse")
                self._emit(conn, order, p.ORDER_CANCEL_REFUSED, {"reason": reason[:500]}, now)
            store_orders.close_tasks(conn, order_id, "answer_cancel", now)
        return self.get(order_id)

    def task_done(self, task_id: int) -> Task:
        """A task is done. For "return to shelf" of an order that is no longer this store's,
        HQ hears of it (``order.returned_to_shelf``)."""
        now = self._now()
        with self.store.transaction() as conn:
            found = store_orders.task(conn, task_id)
            if found is None or found.state != "open":
                raise OrderError("That task is already done.")
            if found.kind == "answer_cancel":
                raise OrderError("Answer HQ's cancel request: agree or refuse.")
            store_orders.close_task(conn, task_id, now)
            order = store_orders.get(conn, found.order_id)
            # HQ hears of it only when the assignment was taken from the store (or the store
            # agreed to cancel): goods put back from a live or completed one change nothing
            taken = (
                order is None
                or order.epoch != found.epoch
                or order.stage in ("revoked", "cancelled")
            )
            if taken:
                _, event_id = outbox.append(
                    conn,
                    p.ORDER_RETURNED_TO_SHELF,
                    {"order_id": found.order_id, "epoch": found.epoch},
                    now,
                )
                store_orders.record_step(
                    conn, found.order_id, found.epoch, p.ORDER_RETURNED_TO_SHELF, event_id, now
                )
        done = store_orders.task(self.store.conn, task_id)
        assert done is not None
        return done

    # -- endless aisle ---------------------------------------------------------------------------

    def request_delivery(
        self,
        items: Sequence[tuple[str, int]],
        *,
        name: str,
        phone: str,
        address: str,
        lat: str | None = None,
        lon: str | None = None,
        note: str | None = None,
        request_id: str | None = None,
    ) -> str:
        """Ask HQ for a delivery order of items this store lacks (``order.requested``); HQ
        creates and dispatches it like any online order. Idempotent by ``request_id`` (the
        same request twice sends one event). Returns the request id."""
        identity = self.store.identity
        request_id = request_id or f"REQ-{identity.store_id}-{uuid.uuid4().hex[:12]}"
        merged: dict[str, int] = {}
        for sku, qty in items:
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                raise OrderError(f"The quantity of {sku} must be a whole number of at least 1.")
            merged[sku] = merged.get(sku, 0) + qty
        if not merged:
            raise OrderError("Add at least one item to the delivery order.")
        for sku in merged:
            if catalog.find_by_sku(self.store.conn, sku) is None:
                raise OrderError(f"{sku} is not in the catalogue.")
        lat = _coordinate(lat, "latitude") or self.store.get_config(STORE_LAT)
        lon = _coordinate(lon, "longitude") or self.store.get_config(STORE_LON)
        if not lat or not lon:
            raise OrderError(
                "Give the delivery address's latitude and longitude: HQ sends the order to the "
                "store nearest the customer."
            )
        payload: dict[str, Any] = {
            "request_id": request_id,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in merged.items()],
            "customer": {"name": name.strip(), "phone": phone.strip()},
            "address": {"text": address.strip(), "lat": lat, "lon": lon},
            "delivery": "delivery",
            "origin_store": identity.store_id,
        }
        if note and note.strip():
            payload["note"] = note.strip()
        if not payload["customer"]["name"] or not payload["customer"]["phone"]:
            raise OrderError("Give the customer's name and phone number.")
        if not payload["address"]["text"]:
            raise OrderError("Give the delivery address.")
        try:
            p.OrderRequestedV1.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            raise OrderError(
                f"The delivery order is not complete ({where}: {first['msg']})."
            ) from exc
        now = self._now()
        with self.store.transaction() as conn:
            if store_orders.request_event(conn, request_id) is not None:
                return request_id
            _, event_id = outbox.append(conn, p.ORDER_REQUESTED, payload, now)
            store_orders.add_request(conn, request_id, event_id, payload, now)
        return request_id

    # -- inside a transaction --------------------------------------------------------------------

    def _load(self, conn: Any, order_id: str) -> StoredOrder:
        order = store_orders.get(conn, order_id)
        if order is None:
            raise OrderError(f"There is no online order {order_id} at this store.")
        return order

    @staticmethod
    def _line(order: StoredOrder, line_id: str) -> PickLine:
        for ln in order.lines:
            if ln.line_id == line_id:
                return ln
        raise OrderError(f"Order {order.order_id} has no line {line_id}.")

    @staticmethod
    def _must_be_ours(order: StoredOrder) -> None:
        if order.assignment in _GONE and order.stage in rules.ACTIVE:
            raise OrderStateError(
                f"HQ no longer gives order {order.order_id} to this store. Nothing was changed."
            )

    def _picking(self, order: StoredOrder) -> None:
        self._must_be_ours(order)
        if order.stage != "accepted":
            raise OrderStateError(
                f"Order {order.order_id} is {rules.STAGE_WORDS.get(order.stage, order.stage)}: "
                + ("accept it first." if order.stage == "new" else "it is not being picked.")
            )

    @staticmethod
    def _can_hand_over(order: StoredOrder) -> None:
        if order.stage in rules.FULFILLED:
            when = order.fulfilled_at.astimezone().strftime("%H:%M") if order.fulfilled_at else ""
            raise PickupCodeError(
                f"This pickup code was already used: order {order.order_id} was handed over"
                f"{' at ' + when if when else ''}. Do not hand anything over again."
            )
        if order.stage in ("revoked", "cancelled", "completed") or order.assignment in _GONE:
            raise PickupCodeError(
                f"Order {order.order_id} is no longer this store's "
                f"({rules.STAGE_WORDS.get(order.stage, order.stage)}). Do not hand it over; "
                "ask the customer to check the order in their app."
            )
        if order.stage != "ready":
            raise OrderStateError(
                f"Order {order.order_id} is not ready yet "
                f"({rules.STAGE_WORDS.get(order.stage, order.stage)}): pick and pack it first."
            )

    def _fulfil(
        self,
        conn: Any,
        order: StoredOrder,
        stage: str,
        type_: str,
        extra: dict[str, Any],
        now: datetime,
    ) -> None:
        """The goods leave: one movement per picked line in the ledger and in the event, holds
        posted, the stage moved; one transaction (the caller's)."""
        event_id = str(uuid.uuid4())
        occurred = now.astimezone(self.store.identity.zone).isoformat(timespec="milliseconds")
        moves = [
            stock.Movement(
                sku=ln.wanted_sku,
                delta=-ln.picked,
                reason="order",
                occurred_at=occurred,
                movement_id=stock.new_movement_id(),
                ref_event_id=event_id,
                order_id=order.order_id,
                epoch=order.epoch,
            )
            for ln in order.lines
            if ln.picked > 0
        ]
        stock.record(conn, moves)
        store_orders.post_holds(conn, order.order_id, now)
        store_orders.set_stage(
            conn, order, stage, now, tracking=extra.get("tracking"), fulfilled=True
        )
        movements = [
            {"movement_id": m.movement_id, "sku": m.sku, "delta": m.delta, "reason": "order"}
            for m in moves
        ]
        self._emit(conn, order, type_, {**extra, "movements": movements}, now, event_id=event_id)

    def _emit(
        self,
        conn: Any,
        order: StoredOrder,
        type_: str,
        extra: dict[str, Any],
        now: datetime,
        *,
        event_id: str | None = None,
    ) -> str:
        payload = {"order_id": order.order_id, "epoch": order.epoch, **extra}
        p.ORDER_EVENT_MODELS[type_].model_validate(payload)  # the shape HQ reads, checked here
        local = now.astimezone(self.store.identity.zone)
        _, event_id = outbox.append(conn, type_, payload, local, event_id=event_id)
        store_orders.record_step(conn, order.order_id, order.epoch, type_, event_id, now)
        return event_id


_GONE = frozenset({"revoked", "cancelled", "completed"})


def _coordinate(text: str | None, what: str) -> str | None:
    """A coordinate as decimal text (event payloads carry no floats), or None when blank."""
    if text is None or not str(text).strip():
        return None
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise OrderError(f"The {what} {text!r} is not a number (e.g. 31.2304).") from None
    limit = 90 if what == "latitude" else 180
    if not value.is_finite() or abs(value) > limit:
        raise OrderError(f"The {what} must be between -{limit} and {limit}.")
    return format(value, "f")
