"""Online orders at the store: this store's rows of HQ's orders stream, the store's own progress
on each order, the holds that keep stock for them, the staff's tasks, and the steps sent to HQ.

HQ owns the order and its assignment to this store (``epoch``, ``assignment``); the store owns
its progress (``stage``, pick counts, tracking). A row from HQ never erases what the store did:
a handover done offline stays a handover, and HQ's answer to it comes back through the outbox
(``superseded``). When HQ takes an order away (revoked, called off, or a newer epoch), the
pending holds are voided and, if anything was already picked, a "return to shelf" task is left
for the staff.

Holds: one row per (order, line, epoch); ``pending`` while the store means to fulfil it (they
lower what the till may sell), ``posted`` once the goods left (the stock movement is in the
ledger), ``voided`` when the order no longer needs them. An order holds from the moment it
arrives assigned to this store under its current epoch, before anyone answers it, because HQ
counts it against the store from its assignment: a till sale that eats that stock warns the
cashier and tells HQ (``order.hold_at_risk``) at once. Accepting keeps the holds; rejecting,
HQ's timeout reassignment or a cancel voids them.

Several tills of one store: each till has its own file and its own ledger (HQ's on-hand of the
store is the sum of them), and each pulls the store's orders. An order nobody has answered is
held at every till, since any of them may fulfil it. Once a till's answer is applied at HQ, the
order is that till's: the others see it ``elsewhere`` ("handled at another till") and hold
nothing for it. Their ledgers never carry its pick or handover, so its holds would lower their
"available" by goods they never counted, and a sale there would tell HQ that stock at risk
which the accepting till's own ledger still shows; HQ keeps the hold against the store as a
whole. A till learns it lost the race in one of two ways: HQ's row says ``accepted`` while the
till itself never accepted (the order is ``new`` here), or HQ answered one of the till's own
steps ``superseded`` with the code ``other_till`` (:func:`hq_answered`).

Every write here runs inside the caller's transaction (a service step, a sale, or a pull page
of the sync engine)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pos.domain.orders import (
    ACTIVE,
    FULFILLED,
    HOLDING,
    SET_ASIDE,
    PickLine,
    advance,
)
from pos.store._conn import DbLike, connection

if TYPE_CHECKING:
    from sync.protocol import OrderRow

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE online_orders (
        order_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        platform_order_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        assignment TEXT NOT NULL,
        stage TEXT NOT NULL,
        stage_epoch INTEGER NOT NULL,
        accept_by TEXT NOT NULL,
        promised_at TEXT,
        delivery TEXT NOT NULL CHECK (delivery IN ('pickup', 'delivery')),
        customer TEXT NOT NULL,
        address TEXT,
        pickup_code_hash TEXT,
        note TEXT,
        tracking TEXT,
        fulfilled_at TEXT,
        received_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        seen_at TEXT
    ) WITHOUT ROWID""",
    "CREATE INDEX online_orders_stage ON online_orders(stage, accept_by)",
    "CREATE INDEX online_orders_code ON online_orders(pickup_code_hash)"
    " WHERE pickup_code_hash IS NOT NULL",
    """CREATE TABLE online_order_lines (
        order_id TEXT NOT NULL,
        line_id TEXT NOT NULL,
        sku TEXT NOT NULL,
        name TEXT NOT NULL,
        qty INTEGER NOT NULL CHECK (qty >= 0),
        picked INTEGER NOT NULL DEFAULT 0 CHECK (picked >= 0),
        substitute_sku TEXT,
        reason TEXT,
        PRIMARY KEY (order_id, line_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE holds (
        order_id TEXT NOT NULL,
        line_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        sku TEXT NOT NULL,
        qty INTEGER NOT NULL CHECK (qty >= 0),
        state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (order_id, line_id, epoch)
    ) WITHOUT ROWID""",
    "CREATE INDEX holds_pending ON holds(sku) WHERE state = 'pending'",
    """CREATE TABLE order_tasks (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('return_to_shelf', 'answer_cancel')),
        state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done')),
        detail TEXT NOT NULL,
        created_at TEXT NOT NULL,
        done_at TEXT
    )""",
    "CREATE INDEX order_tasks_open ON order_tasks(state, id)",
    """CREATE TABLE order_steps (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        type TEXT NOT NULL,
        event_id TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX order_steps_order ON order_steps(order_id, id)",
    """CREATE TABLE order_requests (
        request_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID""",
)
"""The store migration that adds online orders (registered in pos.store.schema)."""


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True)
class StoredOrder:
    order_id: str
    platform: str
    platform_order_id: str
    epoch: int
    assignment: str
    stage: str
    stage_epoch: int
    accept_by: datetime
    promised_at: datetime | None
    delivery: str
    customer: Mapping[str, Any]
    address: Mapping[str, Any] | None
    pickup_code_hash: str | None
    note: str | None
    tracking: str | None
    fulfilled_at: datetime | None
    received_at: datetime
    updated_at: datetime
    seen: bool
    lines: tuple[PickLine, ...]

    @property
    def picked_units(self) -> int:
        return sum(ln.picked for ln in self.lines)

    @property
    def units(self) -> int:
        return sum(ln.qty for ln in self.lines)


@dataclass(frozen=True, slots=True)
class Hold:
    order_id: str
    line_id: str
    epoch: int
    sku: str
    qty: int
    state: str


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    order_id: str
    epoch: int
    kind: str
    state: str
    detail: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """A step the store sent HQ, with HQ's answer (``pending`` until pushed)."""

    order_id: str
    epoch: int
    type: str
    event_id: str
    at: datetime
    state: str  # the outbox state: pending, acked, rejected, superseded (or "pruned")
    reason: str | None


@dataclass(frozen=True, slots=True)
class HeldConflict:
    """A till sale took ``shortfall`` units of ``sku`` held for an order (under ``epoch``)."""

    order_id: str
    epoch: int
    sku: str
    shortfall: int


# ---------------------------------------------------------------------------------------------
# reading

_ORDER_COLUMNS = (
    "order_id, platform, platform_order_id, epoch, assignment, stage, stage_epoch, accept_by,"
    " promised_at, delivery, customer, address, pickup_code_hash, note, tracking, fulfilled_at,"
    " received_at, updated_at, seen_at"
)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _lines(conn: sqlite3.Connection, order_id: str) -> tuple[PickLine, ...]:
    rows = conn.execute(
        "SELECT line_id, sku, name, qty, picked, substitute_sku, reason FROM online_order_lines"
        " WHERE order_id = ? ORDER BY length(line_id), line_id",
        (order_id,),
    )
    return tuple(PickLine(*row) for row in rows)


def _order(conn: sqlite3.Connection, row: tuple[Any, ...]) -> StoredOrder:
    (oid, platform, pid, epoch, assignment, stage, stage_epoch, accept_by, promised_at) = row[:9]
    (delivery, customer, address, code_hash, note, tracking, fulfilled_at) = row[9:16]
    (received_at, updated_at, seen_at) = row[16:]
    return StoredOrder(
        order_id=oid,
        platform=platform,
        platform_order_id=pid,
        epoch=int(epoch),
        assignment=assignment,
        stage=stage,
        stage_epoch=int(stage_epoch),
        accept_by=datetime.fromisoformat(accept_by),
        promised_at=_time(promised_at),
        delivery=delivery,
        customer=json.loads(customer),
        address=json.loads(address) if address else None,
        pickup_code_hash=code_hash,
        note=note,
        tracking=tracking,
        fulfilled_at=_time(fulfilled_at),
        received_at=datetime.fromisoformat(received_at),
        updated_at=datetime.fromisoformat(updated_at),
        seen=seen_at is not None,
        lines=_lines(conn, oid),
    )


def get(db: DbLike, order_id: str) -> StoredOrder | None:
    conn = connection(db)
    row = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM online_orders WHERE order_id = ?", (order_id,)
    ).fetchone()
    return _order(conn, row) if row else None


def listing(db: DbLike, *, closed: bool = False, limit: int = 200) -> list[StoredOrder]:
    """Orders that expect something of the store, most urgent first (then, with ``closed``,
    the most recent others)."""
    conn = connection(db)
    active = sorted(ACTIVE)
    marks = ",".join("?" * len(active))
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM online_orders WHERE stage IN ({marks})"
        " ORDER BY CASE stage WHEN 'new' THEN 0 ELSE 1 END, accept_by, order_id LIMIT ?",
        (*active, limit),
    ).fetchall()
    if closed:
        rows += conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM online_orders WHERE stage NOT IN ({marks})"
            " ORDER BY updated_at DESC, order_id LIMIT ?",
            (*active, limit),
        ).fetchall()
    return [_order(conn, row) for row in rows]


def new_count(db: DbLike) -> int:
    """New orders nobody has opened yet (the badge on the sale screen)."""
    row = (
        connection(db)
        .execute("SELECT count(*) FROM online_orders WHERE stage = 'new' AND seen_at IS NULL")
        .fetchone()
    )
    return int(row[0])


def awaiting_answer(db: DbLike) -> int:
    """Orders assigned to this store that nobody here has answered yet."""
    row = (
        connection(db).execute("SELECT count(*) FROM online_orders WHERE stage = 'new'").fetchone()
    )
    return int(row[0])


def find_by_code_hash(db: DbLike, code_hash: str) -> list[StoredOrder]:
    conn = connection(db)
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM online_orders WHERE pickup_code_hash = ?"
        " ORDER BY updated_at DESC",
        (code_hash,),
    ).fetchall()
    return [_order(conn, row) for row in rows]


def held(db: DbLike, sku: str) -> int:
    """Units of ``sku`` under pending holds."""
    row = (
        connection(db)
        .execute(
            "SELECT coalesce(sum(qty), 0) FROM holds WHERE sku = ? AND state = 'pending'", (sku,)
        )
        .fetchone()
    )
    return int(row[0])


def held_many(db: DbLike, skus: Iterable[str]) -> dict[str, int]:
    return {sku: held(db, sku) for sku in set(skus)}


def holds_of(db: DbLike, order_id: str | None = None) -> list[Hold]:
    conn = connection(db)
    if order_id is None:
        rows = conn.execute(
            "SELECT order_id, line_id, epoch, sku, qty, state FROM holds ORDER BY order_id,"
            " line_id, epoch"
        )
    else:
        rows = conn.execute(
            "SELECT order_id, line_id, epoch, sku, qty, state FROM holds WHERE order_id = ?"
            " ORDER BY line_id, epoch",
            (order_id,),
        )
    return [Hold(*row) for row in rows]


def _task(row: tuple[Any, ...]) -> Task:
    tid, oid, epoch, kind, state, detail, created_at = row
    return Task(int(tid), oid, int(epoch), kind, state, json.loads(detail), _parse(created_at))


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def open_tasks(db: DbLike, order_id: str | None = None) -> list[Task]:
    conn = connection(db)
    sql = (
        "SELECT id, order_id, epoch, kind, state, detail, created_at FROM order_tasks"
        " WHERE state = 'open'"
    )
    params: tuple[Any, ...] = ()
    if order_id is not None:
        sql += " AND order_id = ?"
        params = (order_id,)
    return [_task(r) for r in conn.execute(sql + " ORDER BY id", params)]


def task(db: DbLike, task_id: int) -> Task | None:
    row = (
        connection(db)
        .execute(
            "SELECT id, order_id, epoch, kind, state, detail, created_at FROM order_tasks"
            " WHERE id = ?",
            (task_id,),
        )
        .fetchone()
    )
    return _task(row) if row else None


def _step(row: tuple[Any, ...]) -> Step:
    oid, epoch, type_, event_id, at, state, result = row
    reason = None
    if result:
        try:
            reason = json.loads(result).get("reason")
        except ValueError:
            reason = str(result)
    return Step(oid, int(epoch), type_, event_id, _parse(at), state or "pruned", reason)


_STEP_SQL = (
    "SELECT s.order_id, s.epoch, s.type, s.event_id, s.at, o.state, o.hq_result"
    " FROM order_steps s LEFT JOIN outbox o ON o.event_id = s.event_id"
)


def steps(db: DbLike, order_id: str) -> list[Step]:
    rows = connection(db).execute(_STEP_SQL + " WHERE s.order_id = ? ORDER BY s.id", (order_id,))
    return [_step(r) for r in rows]


def troubled_steps(db: DbLike, limit: int = 100) -> list[Step]:
    """Steps HQ answered ``superseded`` (acted under an epoch that was no longer this store's)
    or refused: the staff must see them, nothing is overwritten silently."""
    rows = connection(db).execute(
        _STEP_SQL + " WHERE o.state IN ('superseded', 'rejected') ORDER BY s.id DESC LIMIT ?",
        (limit,),
    )
    return [_step(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# writing (inside the caller's transaction)


def set_stage(
    conn: sqlite3.Connection,
    order: StoredOrder,
    stage: str,
    now: datetime,
    *,
    tracking: str | None = None,
    fulfilled: bool = False,
) -> None:
    conn.execute(
        "UPDATE online_orders SET stage = ?, stage_epoch = epoch, updated_at = ?, seen_at ="
        " coalesce(seen_at, ?), tracking = coalesce(?, tracking), fulfilled_at = CASE WHEN ?"
        " THEN ? ELSE fulfilled_at END WHERE order_id = ?",
        (stage, _iso(now), _iso(now), tracking, fulfilled, _iso(now), order.order_id),
    )


def mark_seen(conn: sqlite3.Connection, order_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE online_orders SET seen_at = ? WHERE order_id = ? AND seen_at IS NULL",
        (_iso(now), order_id),
    )


def save_line(conn: sqlite3.Connection, order_id: str, line: PickLine) -> None:
    conn.execute(
        "UPDATE online_order_lines SET picked = ?, substitute_sku = ?, reason = ?, qty = ?"
        " WHERE order_id = ? AND line_id = ?",
        (line.picked, line.substitute_sku, line.reason, line.qty, order_id, line.line_id),
    )


def make_holds(conn: sqlite3.Connection, order: StoredOrder, now: datetime) -> int:
    """Pending holds for the order's lines under its epoch (lines already held are left)."""
    at = _iso(now)
    made = 0
    for ln in order.lines:
        if ln.qty <= 0:
            continue
        made += conn.execute(
            "INSERT OR IGNORE INTO holds (order_id, line_id, epoch, sku, qty, state, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
            (order.order_id, ln.line_id, order.epoch, ln.wanted_sku, ln.qty, at, at),
        ).rowcount
    return made


def void_holds(conn: sqlite3.Connection, order_id: str, now: datetime) -> int:
    return conn.execute(
        "UPDATE holds SET state = 'voided', updated_at = ? WHERE order_id = ? AND state ="
        " 'pending'",
        (_iso(now), order_id),
    ).rowcount


def post_holds(conn: sqlite3.Connection, order_id: str, now: datetime) -> int:
    return conn.execute(
        "UPDATE holds SET state = 'posted', updated_at = ? WHERE order_id = ? AND state ="
        " 'pending'",
        (_iso(now), order_id),
    ).rowcount


def holds_to_pick(conn: sqlite3.Connection, order: StoredOrder, now: datetime) -> None:
    """After picking: each line's hold covers what was picked, of the item picked (a substitute
    holds the substitute); what was not found is released."""
    at = _iso(now)
    for ln in order.lines:
        if ln.picked > 0:
            conn.execute(
                "UPDATE holds SET sku = ?, qty = ?, updated_at = ? WHERE order_id = ? AND"
                " line_id = ? AND epoch = ? AND state = 'pending'",
                (ln.wanted_sku, ln.picked, at, order.order_id, ln.line_id, order.epoch),
            )
        else:
            conn.execute(
                "UPDATE holds SET state = 'voided', updated_at = ? WHERE order_id = ? AND"
                " line_id = ? AND epoch = ? AND state = 'pending'",
                (at, order.order_id, ln.line_id, order.epoch),
            )


def add_task(
    conn: sqlite3.Connection,
    order_id: str,
    epoch: int,
    kind: str,
    detail: Mapping[str, Any],
    now: datetime,
) -> int:
    cur = conn.execute(
        "INSERT INTO order_tasks (order_id, epoch, kind, detail, created_at) VALUES (?, ?, ?, ?,"
        " ?)",
        (order_id, epoch, kind, json.dumps(detail, ensure_ascii=False), _iso(now)),
    )
    return int(cur.lastrowid or 0)


def close_task(conn: sqlite3.Connection, task_id: int, now: datetime) -> bool:
    return (
        conn.execute(
            "UPDATE order_tasks SET state = 'done', done_at = ? WHERE id = ? AND state = 'open'",
            (_iso(now), task_id),
        ).rowcount
        == 1
    )


def close_tasks(conn: sqlite3.Connection, order_id: str, kind: str, now: datetime) -> int:
    return conn.execute(
        "UPDATE order_tasks SET state = 'done', done_at = ? WHERE order_id = ? AND kind = ? AND"
        " state = 'open'",
        (_iso(now), order_id, kind),
    ).rowcount


def record_step(
    conn: sqlite3.Connection, order_id: str, epoch: int, type_: str, event_id: str, now: datetime
) -> None:
    conn.execute(
        "INSERT INTO order_steps (order_id, epoch, type, event_id, at) VALUES (?, ?, ?, ?, ?)",
        (order_id, epoch, type_, event_id, _iso(now)),
    )


def add_request(
    conn: sqlite3.Connection,
    request_id: str,
    event_id: str,
    body: Mapping[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        "INSERT INTO order_requests (request_id, event_id, created_at, body) VALUES (?, ?, ?, ?)",
        (request_id, event_id, _iso(now), json.dumps(body, ensure_ascii=False)),
    )


def request_event(db: DbLike, request_id: str) -> str | None:
    row = (
        connection(db)
        .execute("SELECT event_id FROM order_requests WHERE request_id = ?", (request_id,))
        .fetchone()
    )
    return str(row[0]) if row else None


def return_to_shelf(
    conn: sqlite3.Connection, order: StoredOrder, now: datetime, why: str
) -> int | None:
    """Leave a "return to shelf" task for whatever was picked of the order (None: nothing)."""
    picked = [
        {"sku": ln.wanted_sku, "name": ln.name, "qty": ln.picked}
        for ln in order.lines
        if ln.picked > 0
    ]
    if not picked:
        return None
    return add_task(
        conn, order.order_id, order.epoch, "return_to_shelf", {"lines": picked, "why": why}, now
    )


def take_held_stock(
    conn: sqlite3.Connection, wants: Mapping[str, int], on_hand_before: Mapping[str, int]
) -> list[HeldConflict]:
    """A till sale takes ``wants`` (sku -> units) while ``on_hand_before`` was on hand: the units
    it took beyond what was free come out of pending holds. Orders still waiting to be picked
    lose them (the newest holds first); picked orders keep theirs (their goods are in a bin,
    the sale cannot have taken them). The holds and the lines shrink here, in the sale's
    transaction, so the same units are never reported twice. Returns one conflict per
    (order, sku) that lost units."""
    lost: dict[tuple[str, int, str], int] = defaultdict(int)
    set_aside = sorted(SET_ASIDE)
    marks = ",".join("?" * len(set_aside))
    for sku, qty in wants.items():
        total = held(conn, sku)
        if total <= 0 or qty <= 0:
            continue
        free = max(0, on_hand_before.get(sku, 0) - total)
        left = min(total, qty - free)
        if left <= 0:
            continue
        rows = conn.execute(
            "SELECT h.order_id, h.line_id, h.epoch, h.qty, l.qty, l.picked FROM holds h"
            " JOIN online_orders o ON o.order_id = h.order_id"
            " JOIN online_order_lines l ON l.order_id = h.order_id AND l.line_id = h.line_id"
            f" WHERE h.sku = ? AND h.state = 'pending' AND o.stage NOT IN ({marks})"
            " ORDER BY h.created_at DESC, h.order_id DESC, h.line_id",
            (sku, *set_aside),
        ).fetchall()
        for order_id, line_id, epoch, hold_qty, line_qty, picked in rows:
            if left <= 0:
                break
            take = min(left, int(hold_qty), int(line_qty) - int(picked))
            if take <= 0:
                continue
            left -= take
            conn.execute(
                "UPDATE holds SET qty = qty - ?, state = CASE WHEN qty - ? <= 0 THEN 'voided'"
                " ELSE state END WHERE order_id = ? AND line_id = ? AND epoch = ?",
                (take, take, order_id, line_id, epoch),
            )
            conn.execute(
                "UPDATE online_order_lines SET qty = qty - ? WHERE order_id = ? AND line_id = ?",
                (take, order_id, line_id),
            )
            lost[(order_id, int(epoch), sku)] += take
    return [HeldConflict(o, e, s, n) for (o, e, s), n in lost.items()]


# ---------------------------------------------------------------------------------------------
# the pull applier: this store's rows of HQ's orders stream


def apply_change(
    conn: sqlite3.Connection,
    op: str,
    key: str,
    row: Mapping[str, Any] | None,
    now: datetime | None = None,
) -> str:
    """Apply one change of the orders stream (inside the page's transaction). Returns a word
    for what it did: new, updated, reassigned, revoked, cancelled, completed, stale, ignored."""
    now = now or datetime.now(UTC)
    cur = get(conn, key)
    if op == "delete" or row is None:
        if cur is not None and cur.stage in ACTIVE:
            _end_here(conn, cur, "revoke", now, "HQ removed the order from this store")
            return "revoked"
        return "ignored"
    # imported here, not at the top: the pydantic models cost the till ~125 ms of cold start,
    # and only the sync worker's pull needs them
    from sync.protocol import OrderRow

    r = OrderRow.model_validate(dict(row))
    was = None if cur is None or cur.epoch != r.epoch else cur.assignment
    if cur is None:
        _insert(conn, r, now)
        what = "new"
    elif r.epoch < cur.epoch:
        return "stale"
    elif r.epoch > cur.epoch:
        if cur.stage in ACTIVE:
            _end_here(conn, cur, "revoke", now, f"HQ assigned it again under epoch {r.epoch}")
        conn.execute("DELETE FROM online_order_lines WHERE order_id = ?", (r.order_id,))
        conn.execute("DELETE FROM online_orders WHERE order_id = ?", (r.order_id,))
        _insert(conn, r, now)
        what = "reassigned"
    else:
        _same_epoch(conn, cur, r, now)
        what = "updated"
    order = get(conn, key)
    assert order is not None
    return _follow(conn, order, r.assignment, was, now) or what


def _insert(conn: sqlite3.Connection, r: OrderRow, now: datetime) -> None:
    at = _iso(now)
    conn.execute(
        "INSERT INTO online_orders (order_id, platform, platform_order_id, epoch, assignment,"
        " stage, stage_epoch, accept_by, promised_at, delivery, customer, address,"
        " pickup_code_hash, note, received_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            r.order_id,
            r.platform,
            r.platform_order_id,
            r.epoch,
            r.assignment,
            r.epoch,
            r.accept_by.isoformat(),
            r.promised_at.isoformat() if r.promised_at else None,
            r.delivery,
            json.dumps(r.customer.model_dump(), ensure_ascii=False),
            json.dumps(r.address.model_dump(), ensure_ascii=False) if r.address else None,
            r.pickup_code_hash,
            r.note,
            at,
            at,
        ),
    )
    conn.executemany(
        "INSERT INTO online_order_lines (order_id, line_id, sku, name, qty) VALUES (?, ?, ?, ?, ?)",
        [(r.order_id, ln.line_id, ln.sku, ln.name, ln.qty) for ln in r.lines],
    )


def _same_epoch(conn: sqlite3.Connection, cur: StoredOrder, r: OrderRow, now: datetime) -> None:
    """HQ changed its row under the same epoch: the header follows; a line only ever shrinks
    (HQ took units away after a short pick or a hold at risk), and so does its hold."""
    at = _iso(now)
    conn.execute(
        "UPDATE online_orders SET assignment = ?, accept_by = ?, promised_at = ?, customer = ?,"
        " address = ?, pickup_code_hash = ?, note = ?, updated_at = ? WHERE order_id = ?",
        (
            r.assignment,
            r.accept_by.isoformat(),
            r.promised_at.isoformat() if r.promised_at else None,
            json.dumps(r.customer.model_dump(), ensure_ascii=False),
            json.dumps(r.address.model_dump(), ensure_ascii=False) if r.address else None,
            r.pickup_code_hash,
            r.note,
            at,
            cur.order_id,
        ),
    )
    if r.assignment in ("revoked", "cancelled", "completed"):
        return  # the row ends the assignment; its lines say nothing new
    given = {ln.line_id: ln for ln in r.lines}
    excess: list[dict[str, Any]] = []
    for ln in cur.lines:
        new_qty = min(ln.qty, given[ln.line_id].qty) if ln.line_id in given else 0
        if new_qty == ln.qty:
            continue
        picked = ln.picked
        if picked > new_qty:
            excess.append({"sku": ln.wanted_sku, "name": ln.name, "qty": picked - new_qty})
            picked = new_qty
        conn.execute(
            "UPDATE online_order_lines SET qty = ?, picked = ? WHERE order_id = ? AND line_id = ?",
            (new_qty, picked, cur.order_id, ln.line_id),
        )
        conn.execute(
            "UPDATE holds SET qty = min(qty, ?), state = CASE WHEN ? = 0 THEN 'voided' ELSE"
            " state END, updated_at = ? WHERE order_id = ? AND line_id = ? AND epoch = ? AND"
            " state = 'pending'",
            (new_qty, new_qty, at, cur.order_id, ln.line_id, cur.epoch),
        )
    known = {ln.line_id for ln in cur.lines}
    for line_id, added in given.items():
        if line_id not in known:  # HQ added a line under the same epoch: take it as given
            conn.execute(
                "INSERT INTO online_order_lines (order_id, line_id, sku, name, qty) VALUES (?,"
                " ?, ?, ?, ?)",
                (cur.order_id, line_id, added.sku, added.name, added.qty),
            )
    if excess:
        add_task(
            conn,
            cur.order_id,
            cur.epoch,
            "return_to_shelf",
            {"lines": excess, "why": "HQ needs fewer units than were picked"},
            now,
        )


def _follow(
    conn: sqlite3.Connection, order: StoredOrder, assignment: str, was: str | None, now: datetime
) -> str:
    """Do what HQ's assignment state asks of the store's progress. ``was``: HQ's state in the
    store's previous row of this epoch (a cancel request is a new question only when the row
    turns to it; the same row again, e.g. in a snapshot, asks nothing new)."""
    if assignment == "assigned" and order.stage == "new":
        make_holds(conn, order, now)  # HQ counts it against this store from now on
        return ""
    if assignment in ("accepted", "cancel_requested") and order.stage == "new":
        # answered, and not by this till (it never accepted): another till of this store has
        # it. HQ asks a cancel only of an accepted order, so a cancel request says the same.
        _end_here(conn, order, "accepted_elsewhere", now, "another till of this store has it")
        return "elsewhere"
    if order.stage == "elsewhere":
        # nothing is held or picked here; the order's end only changes what the inbox says
        ended = {"revoked": "revoke", "cancelled": "call_off", "completed": "completed_elsewhere"}
        if assignment in ended:
            set_stage(conn, order, advance(order.stage, ended[assignment]), now)
        return ""
    if assignment == "cancel_requested":
        if (
            was != "cancel_requested"
            and order.stage in ACTIVE
            and not any(
                t.kind == "answer_cancel" and t.epoch == order.epoch
                for t in open_tasks(conn, order.order_id)
            )
        ):
            add_task(conn, order.order_id, order.epoch, "answer_cancel", {}, now)
            return "cancel_requested"
        return ""
    if assignment in ("revoked", "cancelled", "completed"):
        close_tasks(conn, order.order_id, "answer_cancel", now)
        if order.stage not in ACTIVE:
            return ""
        if assignment == "revoked":
            _end_here(conn, order, "revoke", now, "HQ took the order away from this store")
            return "revoked"
        if assignment == "cancelled":
            _end_here(conn, order, "call_off", now, "HQ called the order off")
            return "cancelled"
        # completed by another till of this store (one that handed it over offline): what
        # this till picked for it goes back to the shelf
        _end_here(conn, order, "completed_elsewhere", now, "the order was completed elsewhere")
        return "completed"
    return ""


def hq_answered(
    conn: sqlite3.Connection, answers: Iterable[tuple[str, str | None]], now: datetime
) -> int:
    """HQ's ``superseded`` answers to this till's events, as (event_id, reason), recorded in
    the same transaction as the answers. Those saying another till of this store has the order
    move it here to ``elsewhere``: holds voided, anything picked back to the shelf. (A till
    that answered offline learns it this way: HQ's row of the order said ``accepted`` too, and
    may have reached it before its own step went out.) Returns how many orders moved."""
    from sync.protocol import SUPERSEDED_OTHER_TILL, reason_code

    moved = 0
    for event_id, reason in answers:
        if reason_code(reason) != SUPERSEDED_OTHER_TILL:
            continue
        step = conn.execute(
            "SELECT order_id, epoch FROM order_steps WHERE event_id = ?", (event_id,)
        ).fetchone()
        order = get(conn, step[0]) if step else None
        if order is None or order.epoch != int(step[1]) or order.stage not in ACTIVE:
            continue  # gone, reassigned since, or already handed over here: a fact, kept
        _end_here(conn, order, "accepted_elsewhere", now, "another till of this store has it")
        moved += 1
    return moved


def _end_here(
    conn: sqlite3.Connection, order: StoredOrder, action: str, now: datetime, why: str
) -> None:
    """The store no longer fulfils this order: holds voided, picked goods back to the shelf."""
    void_holds(conn, order.order_id, now)
    if order.stage in HOLDING or order.picked_units:
        return_to_shelf(conn, order, now, why)
    set_stage(conn, order, advance(order.stage, action), now)


def fulfilled(stage: str) -> bool:
    return stage in FULFILLED
