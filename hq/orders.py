"""Online orders at HQ: intake, assignment to stores under epochs, the stores' steps, and
reassignment, with a timeline per order that shows whether a store executed.

An order's lines are given to stores as **assignments**: ``(order, store, epoch, lines with
quantities, accept_by)``. Every dispatch decision takes the next epoch of the order (a split
order's parts share one), so an event a store sends under an epoch that is no longer its live
assignment is recognisably stale. A live assignment holds its quantities against the store's
availability at HQ (``order_holds``); the hold goes when the goods leave (handover/shipping,
whose stock movements come in the event) or when the assignment ends.

What is outstanding of a line is always ``qty - fulfilled - live assignments' quantities``;
whatever takes quantity away from a store (reject, timeout, short pick, ``hold_at_risk``,
agreed or forced cancel) ends or shrinks its assignment and then re-sources what is
outstanding with a new epoch (:func:`_resource`): one rule for every kind of reassignment.

Each change of what a store should hold is a row of the ``orders`` stream for that store
only (``changes.store_id``), written in the same transaction. A transaction that changes
existing orders (store events, the tick, HQ's reassignments) first locks that whole stream
(see :mod:`hq.changelog`), which serialises it against every other order writer. A new
platform order (:func:`submit`) takes it only shared: it plans on what it reads, then locks the
partitions of the stores the plan chose (sorted, one statement) and checks that what it
counted on is still free at them, since another new order may have been held there meanwhile
(if not, it starts again; its last try takes the stream whole). So new orders for different
stores are dispatched side by side and no two of them hold the same stock.

Store events (``order.*``) are applied inside the push transaction (:class:`PushContext`,
called from :mod:`hq.ingest`): the current epoch follows :data:`TRANSITIONS` (anything else
is ``rejected``: ``illegal_transition``, quarantined); a stale epoch is ``superseded`` but
its stock movements are applied; a stale handover is kept as a fact, cancels the newer
assignment while it is unfulfilled, and otherwise opens a double-fulfilment incident. Every
till of a store may answer its orders: the first answer HQ applies decides which till has the
assignment, and another till's steps on it are ``superseded`` the same way (code
``other_till``, naming the till that has it), never quarantined."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator
from sqlalchemy import Connection, and_, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from hq import notify
from hq.changelog import ChangeWriter, advance, row_json
from hq.db import (
    Database,
    assignment_lines,
    assignments,
    availability_blocks,
    devices,
    order_feed,
    order_holds,
    order_incidents,
    order_lines,
    order_requests,
    order_timeline,
    orders,
    platforms,
    products,
    stores,
    utcnow,
)
from hq.dispatch import CommonSkus, Need, OrderSettings, Part, Plan, plan
from hq.errors import HQError, Invalid, NotFound, Unauthorized
from sync import protocol as p

PLATFORM_KEY_PREFIX = "hqp_"
ENDLESS_AISLE = "endless_aisle"
"""The platform name of orders a till created (``order.requested``)."""

LIVE = frozenset({"assigned", "accepted", "picked", "ready", "cancel_requested"})
"""Assignment states that hold stock and expect the store to act."""
DEAD = frozenset({"rejected", "expired", "cancelled", "revoked"})
"""Ended without fulfilling; the store is not asked again for this order."""
# ended: completed (fulfilled), voided (no longer needed: fulfilled elsewhere)

ROW_STATE: dict[str, p.OrderAssignment] = {
    "assigned": "assigned",
    "accepted": "accepted",
    "picked": "accepted",
    "ready": "accepted",
    "cancel_requested": "cancel_requested",
    "completed": "completed",
    "rejected": "revoked",
    "expired": "revoked",
    "cancelled": "revoked",
    "revoked": "revoked",
    "voided": "cancelled",
    "merged": "revoked",  # never sent: the next epoch's row replaces it
}
"""What the store's row says for each assignment state (the contract's values)."""

KEEP, BACK = "=", "<"
TRANSITIONS: dict[tuple[str, str], str] = {
    ("assigned", p.ORDER_ACCEPTED): "accepted",
    ("assigned", p.ORDER_REJECTED): "rejected",
    ("accepted", p.ORDER_REJECTED): "rejected",
    ("accepted", p.ORDER_PICKED): "picked",
    ("cancel_requested", p.ORDER_PICKED): KEEP,
    ("picked", p.ORDER_READY): "ready",
    ("cancel_requested", p.ORDER_READY): KEEP,
    ("picked", p.ORDER_HANDED_OVER): "completed",
    ("ready", p.ORDER_HANDED_OVER): "completed",
    ("cancel_requested", p.ORDER_HANDED_OVER): "completed",
    ("picked", p.ORDER_SHIPPED): "completed",
    ("ready", p.ORDER_SHIPPED): "completed",
    ("cancel_requested", p.ORDER_SHIPPED): "completed",
    ("cancel_requested", p.ORDER_CANCEL_ACCEPTED): "cancelled",
    ("cancel_requested", p.ORDER_CANCEL_REFUSED): BACK,
    **{(s, p.ORDER_HOLD_AT_RISK): KEEP for s in LIVE},
}
"""(assignment state, event type) -> new state, for events of the store's live epoch.
``=`` keeps the state, ``<`` returns to the state before the cancel request."""

BLOCK_WHOLE_STORE = frozenset({"no_staff", "closing"})


class Conflict(HQError):
    status_code = 409
    code = "conflict"


# ---------------------------------------------------------------------------------------------
# intake


class IntakeLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str = Field(min_length=1, max_length=128)
    qty: StrictInt = Field(ge=1, le=100_000)


class IntakeDelivery(BaseModel):
    """``{"type": "pickup", "store_id": S}`` or ``{"type": "delivery", "address": {...}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: p.DeliveryKind
    store_id: str | None = None
    address: p.OrderAddress | None = None

    @model_validator(mode="after")
    def _complete(self) -> IntakeDelivery:
        if self.type == "pickup" and not self.store_id:
            raise ValueError("a pickup order names the store (store_id)")
        if self.type == "delivery" and self.address is None:
            raise ValueError("a delivery order carries the address with lat and lon")
        return self


class OrderIntake(BaseModel):
    """What an e-commerce platform submits (``POST /orders/v1``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    platform_order_id: str = Field(min_length=1, max_length=128)
    lines: list[IntakeLine] = Field(min_length=1, max_length=200)
    delivery: IntakeDelivery
    customer: p.OrderCustomer
    promised_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=500)

    def body_hash(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def add_platform(db: Database, name: str, *, now: datetime | None = None) -> str:
    """Register an e-commerce platform; returns its API key (HQ keeps only the sha256)."""
    key = PLATFORM_KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as conn:
        if conn.execute(select(platforms.c.platform).where(platforms.c.platform == name)).first():
            raise Conflict(f"platform {name} already exists")
        conn.execute(
            platforms.insert().values(
                platform=name, key_hash=hash_key(key), created_at=now or utcnow()
            )
        )
    return key


def platform_of_key(db: Database, key: str) -> str:
    with db.read() as conn:
        name = conn.execute(
            select(platforms.c.platform).where(platforms.c.key_hash == hash_key(key))
        ).scalar()
    if name is None:
        raise Unauthorized("this API key is not known to HQ; ask HQ for one (`hq platform add`)")
    return str(name)


def submit(
    db: Database,
    platform: str,
    intake: OrderIntake,
    *,
    now: datetime | None = None,
    settings: OrderSettings | None = None,
) -> tuple[str, bool]:
    """Take an order and dispatch it, in one transaction. Idempotent by (platform,
    platform_order_id): the same body again returns the same order (created False); another
    body under that id is a :class:`Conflict`. Returns (order_id, created).

    The orders stream is held shared (see the module docstring); a try that lost the stock
    it planned on to a concurrent order, or the race for the same platform order id, starts
    again, and the last try holds the stream whole."""
    now = now or utcnow()
    for attempt in range(_SUBMIT_TRIES):
        last = attempt == _SUBMIT_TRIES - 1
        try:
            with transaction(db, now, settings, shared=not last) as tx:
                order_id, created = _intake(tx, platform, intake, origin_store=None)
            return order_id, created
        except Raced:
            continue
        except IntegrityError:
            # the same platform order committed by a concurrent submit (the next try finds
            # it), or an order id drawn twice (the next try draws another)
            if last:
                raise
    raise AssertionError("unreachable: the last try holds the stream whole")


_SUBMIT_TRIES = 4


class Raced(Exception):
    """A concurrent new order was held at a store this plan chose: plan again."""


def _intake(
    tx: Tx, platform: str, intake: OrderIntake, *, origin_store: str | None
) -> tuple[str, bool]:
    conn = tx.conn
    digest = intake.body_hash()
    for made in tx.pending.values():  # the same request twice in one push
        if (made["platform"], made["platform_order_id"]) == (platform, intake.platform_order_id):
            if made["request_hash"] != digest:
                raise Conflict(
                    f"order {intake.platform_order_id} of {platform} came twice with different "
                    "contents",
                    {"order_id": made["order_id"]},
                )
            return str(made["order_id"]), False
    known = conn.execute(
        select(orders.c.order_id, orders.c.request_hash).where(
            orders.c.platform == platform,
            orders.c.platform_order_id == intake.platform_order_id,
        )
    ).first()
    if known is not None:
        if known.request_hash != digest:
            raise Conflict(
                f"order {intake.platform_order_id} of {platform} was already submitted with "
                f"different contents (HQ order {known.order_id}); send the same body or a new id",
                {"order_id": known.order_id},
            )
        return str(known.order_id), False
    skus = sorted({line.sku for line in intake.lines})
    names = {
        r.sku: r.name
        for r in conn.execute(
            select(products.c.sku, products.c.name).where(
                products.c.sku.in_(skus), products.c.active
            )
        )
    }
    unknown = [s for s in skus if s not in names]
    if unknown:
        raise Invalid(
            "the order has products HQ does not sell: " + ", ".join(unknown[:10]),
            {"unknown_skus": unknown[:50]},
        )
    pickup_store = intake.delivery.store_id if intake.delivery.type == "pickup" else None
    if (
        pickup_store is not None
        and conn.execute(select(stores.c.store_id).where(stores.c.store_id == pickup_store)).first()
        is None
    ):
        raise Invalid(f"no store {pickup_store} for pickup")
    order_id = new_order_id(tx.now)
    code = f"{secrets.randbelow(1_000_000):06d}" if pickup_store else None
    address = intake.delivery.address
    values: dict[str, Any] = dict(
        order_id=order_id,
        platform=platform,
        platform_order_id=intake.platform_order_id,
        request_hash=digest,
        state="open",
        epoch=0,
        delivery=intake.delivery.type,
        pickup_store=pickup_store,
        address=None if address is None else json.dumps(address.model_dump(), ensure_ascii=False),
        customer=json.dumps(intake.customer.model_dump(), ensure_ascii=False),
        promised_at=intake.promised_at,
        note=intake.note,
        pickup_code=code,
        pickup_code_hash=None if code is None else p.pickup_code_hash(code),
        origin_store=origin_store,
        created_at=tx.now,
        retry_at=None,
    )
    tx.pending[order_id] = values  # inserted at flush, with the epoch dispatch gives it
    tx.remember(SimpleNamespace(**values))
    rows = [
        {
            "order_id": order_id,
            "line_id": f"L{n}",
            "sku": line.sku,
            "name": names[line.sku],
            "qty": line.qty,
            "fulfilled": 0,
        }
        for n, line in enumerate(intake.lines, start=1)
    ]
    if tx.shared:  # nothing reads them back before the commit: written at flush
        tx.lines.extend(rows)
    else:
        conn.execute(order_lines.insert(), rows)
    tx.names[order_id] = {r["line_id"]: r["name"] for r in rows}
    tx.fresh[order_id] = [Need(r["line_id"], r["sku"], r["qty"]) for r in rows]
    tx.note(
        order_id,
        "created",
        origin_store,
        None,
        platform=platform,
        platform_order_id=intake.platform_order_id,
        lines=[{"sku": line.sku, "qty": line.qty} for line in intake.lines],
    )
    _resource(tx, order_id)
    return order_id, True


def new_order_id(now: datetime) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    tail = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"ORD-{now:%Y%m%d}-{tail}"


# ---------------------------------------------------------------------------------------------
# one order transaction


_listeners: list[tuple[Database, Callable[[set[str]], None]]] = []


def listen(db: Database, callback: Callable[[set[str]], None]) -> Callable[[], None]:
    """Call ``callback(store_ids)`` after each commit (in this process, on ``db``) that
    changed those stores' orders streams. Returns a function that stops listening."""
    item = (db, callback)
    _listeners.append(item)
    return lambda: _listeners.remove(item) if item in _listeners else None


def announce(db: Database, store_ids: set[str]) -> None:
    if not store_ids:
        return
    for target, callback in list(_listeners):
        if target is db:
            callback(set(store_ids))


class Tx:
    """One write transaction over orders: the stream lock, timeline, holds, stream rows.
    ``shared``: a new order's dispatch (see the module docstring and :meth:`claim`)."""

    def __init__(
        self,
        db: Database,
        conn: Connection,
        now: datetime,
        settings: OrderSettings | None,
        *,
        shared: bool = False,
    ) -> None:
        self.db = db
        self.conn = conn
        self.now = now
        self.shared = shared
        self.writer = ChangeWriter(db, conn, now=now)
        self.touched: set[str] = set()
        self._base_settings = settings
        self._settings: OrderSettings | None = None
        self._locked = False
        self._feed: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._orders: dict[str, Any] = {}
        self.names: dict[str, dict[str, str]] = {}  # order -> line -> product name
        self.fresh: dict[str, list[Need]] = {}  # orders made in this transaction: their lines
        self.pending: dict[str, dict[str, Any]] = {}  # their rows, inserted at flush
        self.lines: list[dict[str, Any]] = []  # their lines, inserted at flush (shared)
        self._notes: list[dict[str, Any]] = []

    def lock(self) -> None:
        """Take the orders stream lock (first, before any order row is read for writing)."""
        if not self._locked:
            if self.shared:
                self.writer.share("orders")
            else:
                self.writer.lock("orders")
            self._locked = True

    def claim(self, parts: Iterable[Part]) -> None:
        """Shared: lock the partitions of the stores a plan chose and check that the plan's
        quantities are still free there (:class:`Raced` if another order took them since the
        plan read them). Held whole (or on SQLite, one writer at a time): nothing to do."""
        parts = list(parts)
        if not self.shared or self.db.is_sqlite or not parts:
            return
        self.writer.lock_partitions("orders", {part.store_id for part in parts})
        want: dict[tuple[str, str], int] = defaultdict(int)
        for part in parts:
            for n in part.lines:
                want[(part.store_id, n.sku)] += n.qty
        keys = sorted(want)
        # also draws the numbers of the rows this order will write (one per store), now
        # that the partitions are locked
        rows = self.conn.execute(
            text(
                "WITH n AS MATERIALIZED (SELECT array_agg(nextval('change_numbers')) AS seqs "
                "FROM generate_series(1, :n)) "
                "SELECT k.store_id, k.sku, s.on_hand, h.held, n.seqs "
                "FROM n, unnest(CAST(:stores AS text[]), CAST(:skus AS text[])) AS k(store_id, sku) "
                "LEFT JOIN stock_on_hand s ON s.store_id = k.store_id AND s.sku = k.sku "
                "LEFT JOIN order_holds h ON h.store_id = k.store_id AND h.sku = k.sku"
            ),
            {"n": len(parts), "stores": [k[0] for k in keys], "skus": [k[1] for k in keys]},
        ).all()
        self.writer.reserve("orders", rows[0].seqs)
        safety = self.settings.safety_stock
        for r in rows:
            if int(r.on_hand or 0) - int(r.held or 0) - safety < want[(r.store_id, r.sku)]:
                raise Raced(r.store_id)

    @property
    def settings(self) -> OrderSettings:
        if self._settings is None:
            self._settings = _settings_of(self.db, self.conn, self._base_settings)
        return self._settings

    def order(self, order_id: str) -> Any:
        row = self._orders.get(order_id)
        if row is None:
            row = self.conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
            if row is not None:
                self._orders[order_id] = row
        return row

    def forget(self, order_id: str) -> None:
        self._orders.pop(order_id, None)

    def remember(self, order: Any) -> None:
        self._orders[order.order_id] = order

    def note(
        self, order_id: str, kind: str, store_id: str | None, epoch: int | None, **detail: Any
    ) -> None:
        self._notes.append(
            {
                "order_id": order_id,
                "at": self.now,
                "kind": kind,
                "store_id": store_id,
                "epoch": epoch,
                "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
            }
        )

    def hold(self, store_id: str, deltas: dict[str, int]) -> None:
        deltas = {k: v for k, v in deltas.items() if v}
        self.db.add_to_counters(
            self.conn, order_holds, {"store_id": store_id}, "held", deltas, "sku"
        )

    def emit(self, assignment_id: int, new: tuple[Any, list[p.OrderRowLine]] | None = None) -> None:
        """Write the store's row of this assignment to its orders stream, if it changed.
        ``new``: a just-made assignment and its lines (nothing to read back or compare: its
        epoch is new, so its row is too)."""
        self.lock()
        if new is not None:
            a, lines = new
            self._write_row(a, lines, None)
            return
        a = self.conn.execute(select(assignments).where(assignments.c.id == assignment_id)).one()
        lines = [
            p.OrderRowLine(line_id=r.line_id, sku=r.sku, name=r.name, qty=int(r.qty))
            for r in self.conn.execute(
                select(
                    assignment_lines.c.line_id,
                    assignment_lines.c.sku,
                    assignment_lines.c.qty,
                    order_lines.c.name,
                )
                .select_from(
                    assignment_lines.join(
                        order_lines,
                        and_(
                            order_lines.c.order_id == a.order_id,
                            order_lines.c.line_id == assignment_lines.c.line_id,
                        ),
                    )
                )
                .where(assignment_lines.c.assignment_id == a.id, assignment_lines.c.qty > 0)
                .order_by(assignment_lines.c.line_id)
            )
        ]
        written = self._feed.get((a.store_id, a.order_id))
        before = (
            written[0]
            if written is not None
            else self.conn.execute(
                select(order_feed.c.row).where(
                    order_feed.c.store_id == a.store_id, order_feed.c.order_id == a.order_id
                )
            ).scalar()
        )
        self._write_row(a, lines, before)

    def _write_row(self, a: Any, lines: list[p.OrderRowLine], before: str | None) -> None:
        o = self.order(a.order_id)
        row = p.OrderRow(
            order_id=o.order_id,
            platform=o.platform,
            platform_order_id=o.platform_order_id,
            epoch=int(a.epoch),
            assignment=ROW_STATE[a.state],
            accept_by=a.accept_by,
            promised_at=o.promised_at,
            delivery=o.delivery,
            customer=p.OrderCustomer.model_validate_json(o.customer),
            address=None if o.address is None else p.OrderAddress.model_validate_json(o.address),
            lines=lines,
            pickup_code_hash=o.pickup_code_hash,
            note=o.note,
        ).to_dict()
        text = row_json(row)
        if before == text:
            return
        item = self.writer.upsert("orders", a.order_id, row, store_id=a.store_id)
        # the store's current row, written at flush with the number the change gets there
        self._feed[(a.store_id, a.order_id)] = (text, item)
        self.touched.add(a.store_id)

    def flush(self) -> None:
        """Write what was gathered (new orders, timeline entries, stream changes); call once,
        just before the commit. The writes read no result, so on PostgreSQL they go in two
        round trips: the new orders and their lines, then (after the notifications, which
        read them) the timeline, the stream changes and the stores' rows."""
        with self.db.batched(self.conn):
            if self.pending:
                self.conn.execute(orders.insert(), list(self.pending.values()))
                self.pending.clear()
            if self.lines:
                self.conn.execute(order_lines.insert(), self.lines)
                self.lines = []
        notify.on_flush(self)  # platform cancels settled, and what the customers should hear
        self.writer.draw()
        with self.db.batched(self.conn):
            self._flush()

    def _flush(self) -> None:
        if self._notes:  # in one statement, in the order they happened (ids not read back)
            self.conn.execute(order_timeline.insert().inline(), self._notes)
            self._notes = []
        self.writer.flush()
        if self._feed:
            self.db.upsert(
                self.conn,
                order_feed,
                [
                    {"store_id": store_id, "order_id": order_id, "row": row, "seq": item["seq"]}
                    for (store_id, order_id), (row, item) in sorted(self._feed.items())
                ],
                ["store_id", "order_id"],
            )
            self._feed.clear()


_common: dict[int, CommonSkus] = {}  # per database: SKUs held chain-wide (see CommonSkus)
_SETTINGS_TTL_S = 5.0
_settings_cache: dict[int, tuple[float, OrderSettings]] = {}


def reload_settings(db: Database) -> None:
    """Read the ``orders.*`` settings again at the next order (after ``hq config set``)."""
    _settings_cache.pop(id(db), None)


def _settings_of(db: Database, conn: Connection, base: OrderSettings | None) -> OrderSettings:
    """The ``orders.*`` settings, read at most every few seconds per database (dispatch
    runs per order; a changed setting applies within seconds)."""
    if base is not None:
        return OrderSettings.load(conn, base)
    hit = _settings_cache.get(id(db))
    clock = time.monotonic()
    if hit is not None and clock - hit[0] < _SETTINGS_TTL_S:
        return hit[1]
    loaded = OrderSettings.load(conn)
    _settings_cache[id(db)] = (clock, loaded)
    return loaded


@contextmanager
def transaction(
    db: Database, now: datetime, settings: OrderSettings | None = None, *, shared: bool = False
) -> Iterator[Tx]:
    """A write transaction over orders (stream lock taken first; ``shared``: see :class:`Tx`);
    stores are woken after the commit."""
    with db.write() as conn:
        tx = Tx(db, conn, now, settings, shared=shared)
        tx.lock()
        yield tx
        tx.flush()
    announce(db, tx.touched)


# ---------------------------------------------------------------------------------------------
# assignments


def _live(tx: Tx, order_id: str) -> list[Any]:
    return list(
        tx.conn.execute(
            select(assignments)
            .where(assignments.c.order_id == order_id, assignments.c.state.in_(sorted(LIVE)))
            .order_by(assignments.c.id)
        )
    )


def _lines_of(tx: Tx, assignment_id: int) -> list[Any]:
    return list(
        tx.conn.execute(
            select(assignment_lines)
            .where(assignment_lines.c.assignment_id == assignment_id)
            .order_by(assignment_lines.c.line_id)
        )
    )


def _outstanding(tx: Tx, order_id: str) -> list[Need]:
    """What no store is fulfilling or has fulfilled: qty - fulfilled - live quantities."""
    if order_id in tx.fresh:  # made in this transaction: nothing assigned yet
        return list(tx.fresh.pop(order_id))
    live_ids = [a.id for a in _live(tx, order_id)]
    taken: dict[str, int] = defaultdict(int)
    if live_ids:
        for r in tx.conn.execute(
            select(assignment_lines.c.line_id, assignment_lines.c.qty).where(
                assignment_lines.c.assignment_id.in_(live_ids)
            )
        ):
            taken[r.line_id] += int(r.qty)
    out = []
    for r in tx.conn.execute(
        select(order_lines)
        .where(order_lines.c.order_id == order_id)
        .order_by(order_lines.c.line_id)
    ):
        tx.names.setdefault(order_id, {})[r.line_id] = r.name
        left = int(r.qty) - int(r.fulfilled) - taken[r.line_id]
        if left > 0:
            out.append(Need(r.line_id, r.sku, left))
    return sorted(out, key=lambda n: _line_no(n.line_id))


def _line_no(line_id: str) -> int:
    digits = "".join(ch for ch in line_id if ch.isdigit())
    return int(digits) if digits else 0


def _resource(tx: Tx, order_id: str, *, why: str = "dispatch") -> Plan | None:
    """Dispatch whatever is outstanding of the order under a new epoch."""
    o = tx.order(order_id)
    if o.state in ("completed", "cancelled", "cancelling"):  # cancelling: the platform's cancel
        return None
    needs = _outstanding(tx, order_id)
    if not needs:
        return None
    excluded = (
        set()
        if int(o.epoch) == 0  # never assigned: nobody to leave out
        # stores that gave up on this order, and stores working on a part of it already (an
        # accepted part cannot grow without asking; a part not yet accepted can: see _assign)
        else {
            r[0]
            for r in tx.conn.execute(
                select(assignments.c.store_id)
                .where(
                    assignments.c.order_id == order_id,
                    assignments.c.state.in_(sorted(DEAD | (LIVE - {"assigned"}))),
                )
                .distinct()
            )
        }
    )
    near = None
    if o.address is not None:
        addr = json.loads(o.address)
        near = (float(addr["lat"]), float(addr["lon"]))
    result = plan(
        tx.conn,
        needs,
        near=near,
        only_store=o.pickup_store,
        exclude=excluded,
        settings=tx.settings,
        now=tx.now,
        common=_common.setdefault(id(tx.db), CommonSkus()),
    )
    epoch = int(o.epoch)
    tx.claim(result.parts)
    if result.parts:
        epoch += 1
        for part in result.parts:
            _assign(tx, order_id, part.store_id, epoch, part.lines, part.distance_km, why)
    changed = {
        "epoch": epoch,
        "state": "backorder" if result.missing else "open",
        "retry_at": tx.now + tx.settings.backorder_retry if result.missing else None,
    }
    if order_id in tx.pending:
        tx.pending[order_id].update(changed)
        tx.remember(SimpleNamespace(**tx.pending[order_id]))
    else:
        tx.conn.execute(update(orders).where(orders.c.order_id == order_id).values(**changed))
        tx.forget(order_id)
    if result.missing:
        tx.note(
            order_id,
            "backordered",
            None,
            None,
            lines=[{"line_id": n.line_id, "sku": n.sku, "qty": n.qty} for n in result.missing],
            reason="no store near enough has the stock" if near or o.pickup_store else "no address",
        )
    return result


def _assign(
    tx: Tx,
    order_id: str,
    store_id: str,
    epoch: int,
    lines: Iterable[Need],
    distance_km: float | None,
    why: str,
) -> int:
    lines = list(lines)
    before = (
        None
        if order_id in tx.pending  # made in this transaction: no assignment yet
        else tx.conn.execute(
            select(assignments).where(
                assignments.c.order_id == order_id,
                assignments.c.store_id == store_id,
                assignments.c.state == "assigned",
            )
        ).first()
    )
    if before is not None:
        # the store has a part of this order it has not accepted yet: one row per order and
        # store, so the new epoch carries both parts and the old part ends ("merged")
        old = {ln.line_id: ln for ln in _lines_of(tx, before.id)}
        for n in lines:
            if n.line_id in old:
                old[n.line_id] = SimpleNamespace(
                    line_id=n.line_id, sku=n.sku, qty=int(old[n.line_id].qty) + n.qty
                )
        lines = [
            *(Need(n.line_id, n.sku, int(n.qty)) for n in old.values() if int(n.qty) > 0),
            *(n for n in lines if n.line_id not in old),
        ]
        tx.hold(store_id, {ln.sku: -int(ln.qty) for ln in _lines_of(tx, before.id)})
        tx.conn.execute(
            update(assignments)
            .where(assignments.c.id == before.id)
            .values(state="merged", ended_at=tx.now)
        )
        tx.note(order_id, "merged", store_id, int(before.epoch), into_epoch=epoch)
    accept_by = tx.now + tx.settings.accept_window
    aid = int(
        tx.conn.execute(
            assignments.insert()
            .values(
                order_id=order_id,
                store_id=store_id,
                epoch=epoch,
                state="assigned",
                accept_by=accept_by,
                assigned_at=tx.now,
            )
            .returning(assignments.c.id)
        ).scalar_one()
    )
    held: dict[str, int] = defaultdict(int)
    for n in lines:
        held[n.sku] += n.qty
    with tx.db.batched(tx.conn):  # one round trip: no result read
        tx.conn.execute(
            assignment_lines.insert(),
            [
                {
                    "assignment_id": aid,
                    "line_id": n.line_id,
                    "sku": n.sku,
                    "qty": n.qty,
                    "picked": None,
                    "fulfilled": 0,
                }
                for n in lines
            ],
        )
        tx.hold(store_id, held)
    tx.note(
        order_id,
        "assigned" if why == "dispatch" else "reassigned",
        store_id,
        epoch,
        accept_by=accept_by.isoformat(),
        distance_km=None if distance_km is None else round(distance_km, 2),
        lines=[{"line_id": n.line_id, "sku": n.sku, "qty": n.qty} for n in lines],
        **({} if why == "dispatch" else {"because": why}),
    )
    made = SimpleNamespace(
        id=aid,
        order_id=order_id,
        store_id=store_id,
        epoch=epoch,
        state="assigned",
        accept_by=accept_by,
    )
    names = tx.names.get(order_id, {})
    tx.emit(
        aid,
        new=(
            made,
            [
                p.OrderRowLine(
                    line_id=n.line_id, sku=n.sku, name=names.get(n.line_id, n.sku), qty=n.qty
                )
                for n in sorted(lines, key=lambda n: n.line_id)
            ],
        ),
    )
    return aid


def _end(tx: Tx, a: Any, state: str) -> None:
    """End an assignment without (further) fulfilment: release what it still holds."""
    released: dict[str, int] = defaultdict(int)
    for line in _lines_of(tx, a.id):
        released[line.sku] -= int(line.qty) - int(line.fulfilled)
    tx.hold(a.store_id, released)
    tx.conn.execute(
        update(assignments).where(assignments.c.id == a.id).values(state=state, ended_at=tx.now)
    )
    tx.emit(a.id)


def _set_state(tx: Tx, a: Any, state: str, **values: Any) -> None:
    tx.conn.execute(
        update(assignments).where(assignments.c.id == a.id).values(state=state, **values)
    )
    tx.emit(a.id)


def _shrink(tx: Tx, a: Any, line_id: str, new_qty: int) -> int:
    """Lower what a live assignment is to fulfil of one line; returns the quantity freed."""
    row = tx.conn.execute(
        select(assignment_lines).where(
            assignment_lines.c.assignment_id == a.id, assignment_lines.c.line_id == line_id
        )
    ).one()
    freed = int(row.qty) - new_qty
    if freed <= 0:
        return 0
    tx.conn.execute(
        update(assignment_lines)
        .where(assignment_lines.c.assignment_id == a.id, assignment_lines.c.line_id == line_id)
        .values(qty=new_qty)
    )
    tx.hold(a.store_id, {row.sku: -freed})
    return freed


def _block(tx: Tx, store_id: str, skus: Iterable[str], reason: str) -> None:
    until = tx.now + tx.settings.block_for
    rows = [
        {"store_id": store_id, "sku": sku, "until": until, "reason": reason[:64]}
        for sku in sorted(set(skus))
    ]
    tx.db.upsert(tx.conn, availability_blocks, rows, ["store_id", "sku"])


def _settle(tx: Tx, order_id: str) -> None:
    """Complete the order when every line is fulfilled; flag lines fulfilled more than once."""
    rows = list(tx.conn.execute(select(order_lines).where(order_lines.c.order_id == order_id)))
    if rows and all(int(r.fulfilled) >= int(r.qty) for r in rows):
        o = tx.order(order_id)
        if o.state != "completed":
            tx.conn.execute(
                update(orders)
                .where(orders.c.order_id == order_id)
                .values(state="completed", retry_at=None)
            )
            tx.forget(order_id)
            tx.note(order_id, "completed", None, None)


def _stores_fulfilled(tx: Tx, order_id: str, line_ids: set[str]) -> list[str]:
    return sorted(
        {
            r[0]
            for r in tx.conn.execute(
                select(assignments.c.store_id)
                .select_from(
                    assignments.join(
                        assignment_lines, assignment_lines.c.assignment_id == assignments.c.id
                    )
                )
                .where(
                    assignments.c.order_id == order_id,
                    assignment_lines.c.line_id.in_(sorted(line_ids)),
                    assignment_lines.c.fulfilled > 0,
                )
            )
        }
    )


def _fulfil(tx: Tx, a: Any) -> list[dict[str, Any]]:
    """Record an assignment's lines as fulfilled (its quantities) and release its holds;
    returns the lines."""
    out = []
    released: dict[str, int] = defaultdict(int)
    for line in _lines_of(tx, a.id):
        q = int(line.qty) - int(line.fulfilled)
        if q <= 0:
            continue
        tx.conn.execute(
            update(assignment_lines)
            .where(
                assignment_lines.c.assignment_id == a.id,
                assignment_lines.c.line_id == line.line_id,
            )
            .values(fulfilled=int(line.qty))
        )
        tx.conn.execute(
            update(order_lines)
            .where(order_lines.c.order_id == a.order_id, order_lines.c.line_id == line.line_id)
            .values(fulfilled=order_lines.c.fulfilled + q)
        )
        if a.state in LIVE:
            released[line.sku] -= q
        out.append({"line_id": line.line_id, "sku": line.sku, "qty": q})
    tx.hold(a.store_id, released)
    return out


def open_incident(tx: Tx, order_id: str, kind: str, store_ids: list[str], **detail: Any) -> None:
    tx.conn.execute(
        order_incidents.insert().values(
            order_id=order_id,
            kind=kind,
            stores=json.dumps(store_ids),
            detail=json.dumps(detail, ensure_ascii=False, default=str),
            opened_at=tx.now,
        )
    )
    tx.note(order_id, "incident", None, None, incident=kind, stores=store_ids, **detail)


# ---------------------------------------------------------------------------------------------
# store events (inside the push transaction)

Status = Literal["applied", "rejected", "superseded"]
MoveFn = Callable[[str, str, int, str, str], None]
"""move(movement_id, sku, delta, reason, event_id): a stock movement (ingest writes it)."""


@dataclass
class PushContext:
    """Order effects of one push. The orders stream lock is taken only when the push carries
    an order event (a push of sales alone never waits for it)."""

    db: Database
    conn: Connection
    store_id: str
    now: datetime
    move: MoveFn
    event_id: str = ""
    """The event being applied (set by ingest before each effect)."""
    device_id: str = ""
    """The till that pushed (from its token): a store may have several, and the first one
    whose answer HQ applies has the order (see :func:`_other_till`)."""
    _tx: Tx | None = field(default=None, init=False)

    @property
    def tx(self) -> Tx:
        if self._tx is None:
            self._tx = Tx(self.db, self.conn, self.now, None)
            self._tx.lock()
        return self._tx

    def finish(self, ledger: Iterable[dict[str, Any]]) -> None:
        """Before the commit: a receipt or a count of a SKU lifts HQ's block on it at this
        store (the store has new stock to offer); the stream changes get their numbers."""
        restocked = sorted(
            {
                r["sku"]
                for r in ledger
                if r["store_id"] == self.store_id and r["reason"] not in ("sale", "order")
            }
        )
        if restocked:
            for i in range(0, len(restocked), 500):
                self.conn.execute(
                    delete(availability_blocks).where(
                        availability_blocks.c.store_id == self.store_id,
                        availability_blocks.c.sku.in_(restocked[i : i + 500]),
                    )
                )
        if self._tx is not None:
            self._tx.flush()

    def announce(self) -> None:
        """After the commit: wake the stores whose orders streams changed."""
        if self._tx is not None:
            announce(self.db, self._tx.touched)


def order_event_skus(type_: str, m: Any) -> Iterator[str]:
    if type_ in (p.ORDER_HANDED_OVER, p.ORDER_SHIPPED):
        yield from (mv.sku for mv in m.movements)
    elif type_ == p.ORDER_REQUESTED:
        yield from (line.sku for line in m.lines)


def order_event_movement_ids(type_: str, m: Any) -> Iterator[str]:
    if type_ in (p.ORDER_HANDED_OVER, p.ORDER_SHIPPED):
        yield from (mv.movement_id for mv in m.movements)


def apply_event(ctx: PushContext, type_: str, m: Any) -> tuple[Status, str | None]:
    """Apply one order event of ``ctx.store_id``; returns (status, reason)."""
    tx = ctx.tx
    if type_ == p.ORDER_REQUESTED:
        return _requested(ctx, m)
    o = tx.order(m.order_id)
    if o is None:
        return "rejected", f"unknown_order: HQ has no order {m.order_id}"
    a = tx.conn.execute(
        select(assignments)
        .where(
            assignments.c.order_id == m.order_id,
            assignments.c.store_id == ctx.store_id,
            assignments.c.epoch == m.epoch,
        )
        .order_by(assignments.c.id.desc())
    ).first()
    if a is None:
        return (
            "rejected",
            f"unknown_order: order {m.order_id} was never assigned to store {ctx.store_id} "
            f"under epoch {m.epoch}",
        )
    other = None if type_ == p.ORDER_RETURNED_TO_SHELF else _other_till(ctx, tx, a)
    if other is not None:
        return _step_of_other_till(ctx, tx, a, type_, m, other)
    if a.state in LIVE:
        return _current(ctx, tx, a, type_, m)
    if a.state == "completed":
        if type_ == p.ORDER_HOLD_AT_RISK:
            # the sale came after the goods left (or they left from a bin the sale could not
            # touch): its own stock movements count, nothing is left to re-source
            tx.note(m.order_id, "superseded", ctx.store_id, m.epoch, event=type_, **_by(ctx))
            return (
                "superseded",
                f"superseded: order {m.order_id} was already completed at {ctx.store_id} "
                f"(epoch {m.epoch}); nothing is left to re-source",
            )
        return (
            "rejected",
            f"illegal_transition: {type_} after the assignment was completed "
            f"(order {m.order_id}, epoch {m.epoch})",
        )
    # the store acted under an epoch HQ has taken from it (ended, or voided)
    if type_ in _FULFILMENT:
        return _stale_fulfilment(ctx, tx, a, type_, m)
    if type_ == p.ORDER_RETURNED_TO_SHELF:
        tx.note(m.order_id, "returned_to_shelf", ctx.store_id, m.epoch)
        return "applied", None
    tx.note(m.order_id, "superseded", ctx.store_id, m.epoch, event=type_, assignment=a.state)
    return (
        "superseded",
        f"superseded: epoch {m.epoch} of order {m.order_id} at {ctx.store_id} is no longer "
        f"current ({a.state}); HQ's epoch is {o.epoch}",
    )


_FULFILMENT = (p.ORDER_HANDED_OVER, p.ORDER_SHIPPED)
_ANSWERS = ("accepted", "rejected")


def _by(ctx: PushContext) -> dict[str, str]:
    """The till in a timeline entry of a store's step (which till has the order)."""
    return {"till": ctx.device_id} if ctx.device_id else {}


def _other_till(ctx: PushContext, tx: Tx, a: Any) -> tuple[str, str] | None:
    """(what, till) when another till of the pushing store has this assignment: every till of
    a store receives its orders and may answer offline, and the first answer HQ applies
    decides; a completed assignment belongs to the till whose handover (or shipment)
    completed it. None when nobody answered, this till did, or HQ does not know which till
    did (steps recorded before HQ noted tills)."""
    if not ctx.device_id or a.state == "assigned":
        return None
    found = _first_step(tx, a, _ANSWERS)
    if found is not None and found[1] != ctx.device_id:
        return found
    if a.state == "completed":
        done = _first_step(tx, a, ("handed_over", "shipped"))
        if done is not None and done[1] != ctx.device_id:
            return done
    return None


def _first_step(tx: Tx, a: Any, kinds: tuple[str, ...]) -> tuple[str, str] | None:
    """(kind, till) of the first timeline entry of these kinds for the assignment that names
    its till (written earlier, or earlier in this transaction)."""
    row = tx.conn.execute(
        select(order_timeline.c.kind, order_timeline.c.detail)
        .where(
            order_timeline.c.order_id == a.order_id,
            order_timeline.c.store_id == a.store_id,
            order_timeline.c.epoch == int(a.epoch),
            order_timeline.c.kind.in_(kinds),
        )
        .order_by(order_timeline.c.id)
        .limit(1)
    ).first()
    found = (row.kind, row.detail) if row is not None else None
    if found is None:
        found = next(
            (
                (n["kind"], n["detail"])
                for n in tx._notes
                if n["order_id"] == a.order_id
                and n["store_id"] == a.store_id
                and n["epoch"] == int(a.epoch)
                and n["kind"] in kinds
            ),
            None,
        )
    if found is None or not found[1]:
        return None
    till = json.loads(found[1]).get("till")
    return (str(found[0]), str(till)) if till else None


def _step_of_other_till(
    ctx: PushContext, tx: Tx, a: Any, type_: str, m: Any, other: tuple[str, str]
) -> tuple[Status, str | None]:
    """A step of a till on an assignment another till of its store answered first (both
    tills answered offline, or one acted before it heard of the other's answer). Never a bad
    event: ``superseded``, with the stock movements it carries applied. Goods it handed over
    or shipped are a fact, kept like a stale handover's: they complete the assignment if it
    is still open (the other till gets "completed" and puts back what it picked), and open a
    double-fulfilment incident if the other till already handed the order over."""
    answer, till = other
    order_id, store, epoch = a.order_id, a.store_id, int(a.epoch)
    said = f"{answer.replace('_', ' ')} at {till}"
    if type_ in _FULFILMENT:
        if a.state not in LIVE and a.state != "completed":
            return _stale_fulfilment(ctx, tx, a, type_, m)
        for mv in m.movements:
            ctx.move(mv.movement_id, mv.sku, mv.delta, "order", ctx.event_id)
        kind = "shipped" if type_ == p.ORDER_SHIPPED else "handed_over"
        extra = {"tracking": m.tracking} if type_ == p.ORDER_SHIPPED else {}
        if a.state in LIVE:
            lines = _fulfil(tx, a)
            _set_state(tx, a, "completed", ended_at=tx.now)
            tx.note(order_id, kind, store, epoch, lines=lines, other_till=till, **_by(ctx), **extra)
            _check_double(tx, order_id, store, epoch, lines)
            _settle(tx, order_id)
            return (
                "superseded",
                f"{p.SUPERSEDED_OTHER_TILL}: {said} (order {order_id}, epoch {epoch}); the "
                f"{kind.replace('_', ' ')} at {ctx.device_id} is kept and completes the order",
            )
        moved = [{"sku": mv.sku, "qty": -mv.delta} for mv in m.movements]
        tx.note(order_id, kind, store, epoch, again=True, other_till=till, **_by(ctx), **extra)
        open_incident(
            tx,
            order_id,
            "double_fulfilment",
            [store],
            tills=[till, ctx.device_id],
            lines=moved,
            last_by=store,
            last_epoch=epoch,
        )
        return (
            "superseded",
            f"{p.SUPERSEDED_OTHER_TILL}: {said}, which completed order {order_id}; this "
            f"{kind.replace('_', ' ')} is kept, its stock moved, and HQ opened an incident",
        )
    tx.note(
        order_id,
        "superseded",
        store,
        epoch,
        event=type_,
        assignment=a.state,
        other_till=till,
        **_by(ctx),
    )
    return (
        "superseded",
        f"{p.SUPERSEDED_OTHER_TILL}: {said} (order {order_id}, epoch {epoch}); this step of "
        f"{ctx.device_id} changes nothing",
    )


def _current(ctx: PushContext, tx: Tx, a: Any, type_: str, m: Any) -> tuple[Status, str | None]:
    new = TRANSITIONS.get((a.state, type_))
    if new is None:
        return (
            "rejected",
            f"illegal_transition: {type_} cannot follow {a.state} "
            f"(order {a.order_id}, epoch {a.epoch})",
        )
    store, epoch, order_id = a.store_id, int(a.epoch), a.order_id
    if type_ == p.ORDER_ACCEPTED:
        _set_state(tx, a, "accepted")
        tx.note(order_id, "accepted", store, epoch, **_by(ctx))
    elif type_ == p.ORDER_REJECTED:
        _end(tx, a, "rejected")
        skus = ["*"] if m.reason in BLOCK_WHOLE_STORE else [ln.sku for ln in _lines_of(tx, a.id)]
        _block(tx, store, skus, f"rejected:{m.reason}")
        tx.note(order_id, "rejected", store, epoch, reason=m.reason, note=m.note, **_by(ctx))
        _resource(tx, order_id, why=f"rejected by {store} ({m.reason})")
    elif type_ == p.ORDER_PICKED:
        return _picked(tx, a, m)
    elif type_ == p.ORDER_READY:
        if a.state == "cancel_requested":
            _set_state(tx, a, a.state, prev_state="ready")
        else:
            _set_state(tx, a, "ready")
        tx.note(order_id, "ready", store, epoch)
    elif type_ in _FULFILMENT:
        for mv in m.movements:
            ctx.move(mv.movement_id, mv.sku, mv.delta, "order", ctx.event_id)
        lines = _fulfil(tx, a)
        _set_state(tx, a, "completed", ended_at=tx.now)
        kind = "shipped" if type_ == p.ORDER_SHIPPED else "handed_over"
        extra = {"tracking": m.tracking} if type_ == p.ORDER_SHIPPED else {}
        tx.note(order_id, kind, store, epoch, lines=lines, **_by(ctx), **extra)
        _check_double(tx, order_id, store, epoch, lines)
        _settle(tx, order_id)
    elif type_ == p.ORDER_CANCEL_ACCEPTED:
        # the order called off: the row says cancelled; only moved: revoked
        _end(tx, a, "voided" if a.then == "cancel" else "cancelled")
        tx.note(order_id, "cancel_accepted", store, epoch)
        if a.then != "cancel":
            _resource(tx, order_id, why=f"cancelled by {store} at HQ's request")
    elif type_ == p.ORDER_CANCEL_REFUSED:
        back = a.prev_state or "accepted"
        _set_state(tx, a, back, prev_state=None, cancel_requested_at=None)
        tx.note(order_id, "cancel_refused", store, epoch, reason=m.reason)
    elif type_ == p.ORDER_HOLD_AT_RISK:
        return _hold_at_risk(tx, a, m)
    return "applied", None


def _picked(tx: Tx, a: Any, m: p.OrderPickedV1) -> tuple[Status, str | None]:
    lines = {ln.line_id: ln for ln in _lines_of(tx, a.id)}
    unknown = [ln.line_id for ln in m.lines if ln.line_id not in lines]
    if unknown:
        return "rejected", f"invalid_payload: no line {unknown[0]} in this assignment"
    short: list[dict[str, Any]] = []
    for ln in m.lines:
        have = lines[ln.line_id]
        tx.conn.execute(
            update(assignment_lines)
            .where(
                assignment_lines.c.assignment_id == a.id,
                assignment_lines.c.line_id == ln.line_id,
            )
            .values(picked=ln.qty_picked)
        )
        if ln.qty_picked < int(have.qty):
            _shrink(tx, a, ln.line_id, ln.qty_picked)
            short.append(
                {
                    "line_id": ln.line_id,
                    "sku": have.sku,
                    "picked": ln.qty_picked,
                    "ordered": int(have.qty),
                    "reason": ln.reason,
                }
            )
    if a.state == "cancel_requested":
        _set_state(tx, a, a.state, prev_state="picked")
    else:
        _set_state(tx, a, "picked")
    tx.note(
        a.order_id,
        "picked",
        a.store_id,
        int(a.epoch),
        lines=[
            {
                "line_id": ln.line_id,
                "picked": ln.qty_picked,
                "ordered": ln.qty_ordered,
                **({"substitute_sku": ln.substitute_sku} if ln.substitute_sku else {}),
                **({"reason": ln.reason} if ln.reason else {}),
            }
            for ln in m.lines
        ],
    )
    if short:
        _block(tx, a.store_id, [s["sku"] for s in short], "short_pick")
        tx.note(a.order_id, "short_picked", a.store_id, int(a.epoch), lines=short)
        if not any(int(ln.qty) > 0 for ln in _lines_of(tx, a.id)):
            _end(tx, a, "revoked")
        _resource(tx, a.order_id, why=f"short pick at {a.store_id}")
    return "applied", None


def _hold_at_risk(tx: Tx, a: Any, m: p.OrderHoldAtRiskV1) -> tuple[Status, str | None]:
    """A till sale ate stock held for this assignment. Accepted: the store keeps what is left
    of the line and HQ re-sources the shortfall. Not answered yet: like a rejection of that SKU,
    its lines leave the store whole (a store short of part of a line is not asked for the
    rest; the next store gets the line entire), the SKU is blocked there, and HQ re-dispatches
    them; a store left with nothing of the order is out of it, as after a rejection."""
    unanswered = a.state == "assigned"
    left = m.shortfall
    freed = 0
    for ln in _lines_of(tx, a.id):
        if ln.sku != m.sku or int(ln.qty) <= 0:
            continue
        if unanswered:
            freed += _shrink(tx, a, ln.line_id, 0)
            continue
        if left <= 0:
            continue
        take = min(left, int(ln.qty))
        freed += _shrink(tx, a, ln.line_id, int(ln.qty) - take)
        left -= take
    _block(tx, a.store_id, [m.sku], "hold_at_risk")
    tx.note(
        a.order_id,
        "hold_at_risk",
        a.store_id,
        int(a.epoch),
        sku=m.sku,
        shortfall=m.shortfall,
        sale_id=m.sale_id,
        resourced=freed,
        **({"unanswered": True} if unanswered else {}),
    )
    if freed:
        if not any(int(ln.qty) > 0 for ln in _lines_of(tx, a.id)):
            _end(tx, a, "revoked")
        else:
            tx.emit(a.id)
        _resource(tx, a.order_id, why=f"hold at risk at {a.store_id}")
    return "applied", None


def _stale_fulfilment(
    ctx: PushContext, tx: Tx, a: Any, type_: str, m: Any
) -> tuple[Status, str | None]:
    """A store handed over (or shipped) under an epoch HQ had already taken from it. The goods
    are gone: keep the fact, move the stock, cancel newer unfulfilled assignments of those
    lines, or open a double-fulfilment incident when a newer one was fulfilled too."""
    for mv in m.movements:
        ctx.move(mv.movement_id, mv.sku, mv.delta, "order", ctx.event_id)
    order_id = a.order_id
    lines = _fulfil(tx, a)
    tx.conn.execute(update(assignments).where(assignments.c.id == a.id).values(ended_at=tx.now))
    kind = "shipped" if type_ == p.ORDER_SHIPPED else "handed_over"
    tx.note(
        order_id,
        kind,
        a.store_id,
        int(a.epoch),
        stale=True,
        was=a.state,
        lines=lines,
        **({"tracking": m.tracking} if type_ == p.ORDER_SHIPPED else {}),
    )
    line_ids = {ln["line_id"] for ln in lines}
    for b in _live(tx, order_id):
        if b.id == a.id:
            continue
        if not any(ln.line_id in line_ids for ln in _lines_of(tx, b.id)):
            continue
        _end(tx, b, "voided")
        tx.note(
            order_id,
            "cancelled",
            b.store_id,
            int(b.epoch),
            reason=f"fulfilled by {a.store_id} under stale epoch {a.epoch}",
        )
    _check_double(tx, order_id, a.store_id, int(a.epoch), lines)
    _resource(tx, order_id, why="lines left after a stale handover")
    _settle(tx, order_id)
    return (
        "superseded",
        f"superseded: epoch {a.epoch} of order {order_id} was no longer {a.store_id}'s; "
        "the handover is kept and its stock moved",
    )


def _check_double(
    tx: Tx, order_id: str, store_id: str, epoch: int, lines: list[dict[str, Any]]
) -> None:
    ids = sorted({ln["line_id"] for ln in lines})
    if not ids:
        return
    over = [
        {"line_id": r.line_id, "sku": r.sku, "qty": int(r.qty), "fulfilled": int(r.fulfilled)}
        for r in tx.conn.execute(
            select(order_lines).where(
                order_lines.c.order_id == order_id, order_lines.c.line_id.in_(ids)
            )
        )
        if int(r.fulfilled) > int(r.qty)
    ]
    if over:
        open_incident(
            tx,
            order_id,
            "double_fulfilment",
            _stores_fulfilled(tx, order_id, {o["line_id"] for o in over}),
            lines=over,
            last_by=store_id,
            last_epoch=epoch,
        )


def _requested(ctx: PushContext, m: p.OrderRequestedV1) -> tuple[Status, str | None]:
    if m.origin_store != ctx.store_id:
        return (
            "rejected",
            f"store_mismatch: the request names store {m.origin_store} but the token is "
            f"{ctx.store_id}",
        )
    tx = ctx.tx
    intake = OrderIntake(
        platform_order_id=m.request_id,
        lines=[IntakeLine(sku=ln.sku, qty=ln.qty) for ln in m.lines],
        delivery=IntakeDelivery(type="delivery", address=m.address),
        customer=m.customer,
        note=m.note,
    )
    try:
        order_id, created = _intake(tx, ENDLESS_AISLE, intake, origin_store=ctx.store_id)
    except Conflict as error:
        return "rejected", f"idempotency_mismatch: {error.message}"
    except Invalid as error:
        return "rejected", f"invalid_payload: {error.message}"
    if created:
        tx.conn.execute(
            order_requests.insert().values(
                request_id=m.request_id, store_id=ctx.store_id, order_id=order_id
            )
        )
    return "applied", None


# ---------------------------------------------------------------------------------------------
# HQ-side reassignment: timeouts, cancel requests, forced reassignment, backorders


def _last_seen(conn: Connection, store_id: str) -> datetime | None:
    value: datetime | None = conn.execute(
        select(func.max(devices.c.last_seen_at)).where(devices.c.store_id == store_id)
    ).scalar()
    return value


def _unreachable(tx: Tx, store_id: str) -> bool:
    seen = _last_seen(tx.conn, store_id)
    return seen is None or tx.now - seen > tx.settings.force_after


@dataclass(frozen=True)
class TickReport:
    expired: int = 0
    forced: int = 0
    retried: int = 0

    def __bool__(self) -> bool:
        return bool(self.expired or self.forced or self.retried)


def tick(
    db: Database, *, now: datetime | None = None, settings: OrderSettings | None = None
) -> TickReport:
    """The periodic duty (``hq serve`` runs it every ``tick_seconds``; ``hq order tick`` by
    hand): assignments past accept_by are re-dispatched with epoch + 1; cancel requests to a
    store unreachable longer than ``force_after`` become forced reassignments; backorders are
    tried again. Each order is its own transaction."""
    now = now or utcnow()
    with db.read() as conn:
        base = OrderSettings.load(conn, settings)
        late = [
            (r.id, r.order_id)
            for r in conn.execute(
                select(assignments.c.id, assignments.c.order_id)
                .where(assignments.c.state == "assigned", assignments.c.accept_by <= now)
                .order_by(assignments.c.accept_by)
            )
        ]
        asked = [
            (r.id, r.order_id)
            for r in conn.execute(
                select(assignments.c.id, assignments.c.order_id).where(
                    assignments.c.state == "cancel_requested"
                )
            )
        ]
        waiting = [
            r[0]
            for r in conn.execute(
                select(orders.c.order_id).where(
                    orders.c.state == "backorder", orders.c.retry_at <= now
                )
            )
        ]
    expired = forced = retried = 0
    for aid, order_id in late:
        with transaction(db, now, base) as tx:
            a = tx.conn.execute(select(assignments).where(assignments.c.id == aid)).one()
            if a.state != "assigned" or a.accept_by > now:
                continue
            _end(tx, a, "expired")
            tx.note(order_id, "expired", a.store_id, int(a.epoch), accept_by=a.accept_by)
            _resource(tx, order_id, why=f"no answer from {a.store_id} by accept_by")
            expired += 1
    for aid, _order in asked:
        with transaction(db, now, base) as tx:
            a = tx.conn.execute(select(assignments).where(assignments.c.id == aid)).one()
            if a.state != "cancel_requested" or not _unreachable(tx, a.store_id):
                continue
            _force(tx, a)
            forced += 1
    for order_id in waiting:
        with transaction(db, now, base) as tx:
            o = tx.order(order_id)
            if o.state != "backorder":
                continue
            tx.note(order_id, "retry", None, None)
            _resource(tx, order_id, why="backorder retried")
            retried += 1
    if late or asked or waiting:
        with db.write() as conn:  # blocks that ran out say nothing any more
            conn.execute(delete(availability_blocks).where(availability_blocks.c.until <= now))
    advance(db)  # idle stores' cursors keep up with new orders' numbers
    return TickReport(expired, forced, retried)


def _force(tx: Tx, a: Any) -> None:
    seen = _last_seen(tx.conn, a.store_id)
    _end(tx, a, "revoked")
    tx.note(
        a.order_id,
        "forced_reassign",
        a.store_id,
        int(a.epoch),
        last_seen=None if seen is None else seen.isoformat(),
        limit_minutes=tx.settings.force_after.total_seconds() / 60,
    )
    _resource(tx, a.order_id, why=f"{a.store_id} unreachable: forced")


def reassign(
    db: Database,
    order_id: str,
    *,
    store_id: str | None = None,
    now: datetime | None = None,
    settings: OrderSettings | None = None,
    cancel: bool = False,
) -> list[str]:
    """Take an order (or its part at one store) away from its stores: an assignment not yet
    accepted is revoked at once; an accepted one gets a cancel request (HQ waits for the
    store's answer), unless the store has been unreachable longer than ``force_after``
    (forced). ``cancel=True`` calls the order off instead of re-dispatching it. Returns what
    was done, one line per assignment."""
    now = now or utcnow()
    done: list[str] = []
    with transaction(db, now, settings) as tx:
        o = tx.order(order_id)
        if o is None:
            raise NotFound(f"no order {order_id}")
        if cancel:
            tx.conn.execute(
                update(orders)
                .where(orders.c.order_id == order_id)
                .values(state="cancelled", retry_at=None)
            )
            tx.forget(order_id)
            tx.note(order_id, "cancelled", None, None, reason="called off at HQ")
        for a in _live(tx, order_id):
            if store_id is not None and a.store_id != store_id:
                continue
            if a.state == "assigned":
                _end(tx, a, "voided" if cancel else "revoked")
                tx.note(order_id, "revoked", a.store_id, int(a.epoch))
                done.append(f"{a.store_id}: revoked (not accepted yet)")
            elif _unreachable(tx, a.store_id) and not cancel:
                _force(tx, a)
                done.append(f"{a.store_id}: forced (unreachable)")
            elif a.state != "cancel_requested":
                _set_state(
                    tx,
                    a,
                    "cancel_requested",
                    prev_state=a.state,
                    cancel_requested_at=now,
                    then="cancel" if cancel else "redispatch",
                )
                tx.note(order_id, "cancel_requested", a.store_id, int(a.epoch))
                done.append(f"{a.store_id}: cancel requested (waiting for the store)")
        if not cancel:
            _resource(tx, order_id, why="reassigned at HQ")
    return done


# ---------------------------------------------------------------------------------------------
# reading


def view(db: Database, order_id: str) -> dict[str, Any]:
    """Everything about one order: header, lines, assignments, timeline, incidents."""
    with db.read() as conn:
        o = conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
        if o is None:
            raise NotFound(f"no order {order_id}")
        lines = [
            {
                "line_id": r.line_id,
                "sku": r.sku,
                "name": r.name,
                "qty": int(r.qty),
                "fulfilled": int(r.fulfilled),
            }
            for r in conn.execute(select(order_lines).where(order_lines.c.order_id == order_id))
        ]
        lines.sort(key=lambda ln: _line_no(str(ln["line_id"])))
        parts = []
        for a in conn.execute(
            select(assignments).where(assignments.c.order_id == order_id).order_by(assignments.c.id)
        ):
            parts.append(
                {
                    "store_id": a.store_id,
                    "epoch": int(a.epoch),
                    "state": a.state,
                    "accept_by": a.accept_by.isoformat(),
                    "assigned_at": a.assigned_at.isoformat(),
                    "lines": [
                        {
                            "line_id": r.line_id,
                            "sku": r.sku,
                            "qty": int(r.qty),
                            "picked": r.picked,
                            "fulfilled": int(r.fulfilled),
                        }
                        for r in conn.execute(
                            select(assignment_lines)
                            .where(assignment_lines.c.assignment_id == a.id)
                            .order_by(assignment_lines.c.line_id)
                        )
                    ],
                }
            )
        timeline = [
            {
                "at": r.at.isoformat(),
                "kind": r.kind,
                "store_id": r.store_id,
                "epoch": None if r.epoch is None else int(r.epoch),
                "detail": None if r.detail is None else json.loads(r.detail),
            }
            for r in conn.execute(
                select(order_timeline)
                .where(order_timeline.c.order_id == order_id)
                .order_by(order_timeline.c.id)
            )
        ]
        found = [
            _incident_dict(r)
            for r in conn.execute(
                select(order_incidents)
                .where(order_incidents.c.order_id == order_id)
                .order_by(order_incidents.c.id)
            )
        ]
    return {
        "order_id": o.order_id,
        "platform": o.platform,
        "platform_order_id": o.platform_order_id,
        "state": o.state,
        "epoch": int(o.epoch),
        "delivery": o.delivery,
        "pickup_store": o.pickup_store,
        "origin_store": o.origin_store,
        "address": None if o.address is None else json.loads(o.address),
        "customer": json.loads(o.customer),
        "promised_at": None if o.promised_at is None else o.promised_at.isoformat(),
        "note": o.note,
        "pickup_code": o.pickup_code,
        "pickup_qr": None if o.pickup_code is None else p.pickup_qr(o.order_id, o.pickup_code),
        "created_at": o.created_at.isoformat(),
        "lines": lines,
        "assignments": parts,
        "timeline": timeline,
        "incidents": found,
    }


def _incident_dict(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "order_id": r.order_id,
        "kind": r.kind,
        "stores": json.loads(r.stores),
        "detail": json.loads(r.detail),
        "opened_at": r.opened_at.isoformat(),
        "resolved_at": None if r.resolved_at is None else r.resolved_at.isoformat(),
    }


def incidents(db: Database, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Order incidents (double fulfilment...) for ``hq report``."""
    with db.read() as conn:
        q = select(order_incidents).order_by(order_incidents.c.id)
        if open_only:
            q = q.where(order_incidents.c.resolved_at.is_(None))
        return [_incident_dict(r) for r in conn.execute(q)]


def store_head(db: Database, store_id: str) -> int:
    """The last change number of the store's orders stream (0: none yet)."""
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.max(order_feed.c.seq), 0)).where(
                    order_feed.c.store_id == store_id
                )
            ).scalar_one()
        )


def holds(db: Database, store_id: str) -> dict[str, int]:
    """HQ's pending holds at a store (SKUs with a non-zero hold)."""
    with db.read() as conn:
        return {
            r.sku: int(r.held)
            for r in conn.execute(
                select(order_holds.c.sku, order_holds.c.held).where(
                    order_holds.c.store_id == store_id, order_holds.c.held != 0
                )
            )
        }


def live_assignments(db: Database, store_id: str) -> dict[str, tuple[int, str, dict[str, int]]]:
    """What HQ expects of a store now: order -> (epoch, state, {sku: qty}) of its live
    assignments (for invariant checks: a store's pending holds should match this)."""
    out: dict[str, tuple[int, str, dict[str, int]]] = {}
    with db.read() as conn:
        rows = conn.execute(
            select(
                assignments.c.order_id,
                assignments.c.epoch,
                assignments.c.state,
                assignment_lines.c.sku,
                assignment_lines.c.qty,
            )
            .select_from(
                assignments.join(
                    assignment_lines, assignment_lines.c.assignment_id == assignments.c.id
                )
            )
            .where(assignments.c.store_id == store_id, assignments.c.state.in_(sorted(LIVE)))
        )
        for r in rows:
            _epoch, _state, lines = out.setdefault(r.order_id, (int(r.epoch), r.state, {}))
            if int(r.qty) > 0:
                lines[r.sku] = lines.get(r.sku, 0) + int(r.qty)
    return out
