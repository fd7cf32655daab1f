"""Event ingest: a device's batch applied exactly once, in seq order, never blocked.

One push is ONE transaction: the device row is locked (``FOR UPDATE``; SQLite's write
transaction holds the database), every event with ``seq == last_applied_seq + 1`` is decided,
all effects are written with one multi-row statement per table, and ``last_applied_seq`` moves
in that same transaction. A crash before commit leaves nothing; after commit a lost response is
healed by the re-push, which answers ``duplicate``.

Decisions (documented for the store side):

* Same ``seq`` again with the same ``event_id`` and hash -> ``duplicate`` carrying the first
  outcome. A different event for an already processed ``seq``, or an ``event_id`` HQ already
  holds under another ``seq``, is refused per event as ``rejected`` with reason
  ``idempotency_mismatch`` (and copied to the quarantine for a person to look at). Answering
  the whole request 409/422 instead would block every later event of that till for ever. For
  an already processed seq nothing moves; for a new seq the event is quarantined and counts as
  processed like any other rejected event.
* A business-rule failure (bad hash, unknown type or version, malformed payload, unknown SKU,
  a payload naming another store or device, a reused sale or movement id) -> ``rejected``,
  quarantined, counted as processed: later events are not held up.
* Unknown SKU in a sale: quarantined (DESIGN.md: a business-rule failure). "Unknown" means HQ's
  catalogue has never had that SKU; a product HQ has taken out of the catalogue stays known
  (inactive), so a till that sold it before hearing of the change still gets its sale applied.
  A till can only sell what HQ sent it, so an unknown SKU means corrupt data, which a person
  must look at; the store's end-of-day check then shows the difference instead of HQ silently
  inventing stock for a product it does not have.
* A gap (``seq > last_applied_seq + 1``) stops the batch; events from the gap on get no result.
* ``superseded``: an order event under a stale epoch; its stock movements still apply
  (``order.*`` events and their effects: :mod:`hq.orders`).

Effects: ``sale.completed`` -> a ``sales`` row, its ``payments`` (with store and business day,
for the end-of-day totals per method), one ``stock_ledger`` movement per line (``delta = -qty``,
``movement_id`` unique) and the ``stock_on_hand`` projection; ``stock.adjusted`` /
``stock.received`` -> their movements the same way."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from hq import orders
from hq.db import (
    Database,
    devices,
    events,
    payments,
    products,
    quarantine,
    sales,
    stock_ledger,
    stock_on_hand,
    sync_log,
    utcnow,
)
from hq.errors import BatchOutOfOrder, BatchTooLarge, DeviceMismatch, Unauthorized, Unavailable
from sync.protocol import (
    MAX_PUSH_BATCH,
    ORDER_EVENT_MODELS,
    SALE_COMPLETED,
    STOCK_MOVEMENT_TYPES,
    EventEnvelope,
    PushRequest,
    PushResponse,
    PushResult,
    SaleCompletedV1,
    StockMovementsV1,
    canonical_json,
)


@dataclass(frozen=True)
class DeviceAuth:
    """Who is calling, as the token says."""

    pk: int
    store_id: str
    device_id: str


def authenticate(conn: Connection, token_hash: str) -> DeviceAuth:
    row = conn.execute(
        select(devices.c.id, devices.c.store_id, devices.c.device_id).where(
            devices.c.token_hash == token_hash
        )
    ).first()
    if row is None:
        raise Unauthorized("this token is not known to HQ; register the till with `hq device add`")
    return DeviceAuth(int(row.id), row.store_id, row.device_id)


# ---------------------------------------------------------------------------------------------
# event handlers: validate a payload, name the keys to check, produce rows


@dataclass
class Effects:
    """Rows one batch writes, gathered so each table gets one multi-row insert."""

    sales: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    on_hand: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class Handler:
    model: type[BaseModel]
    versions: frozenset[int]
    skus: Callable[[Any], Iterable[str]]
    movement_ids: Callable[[Any], Iterable[str]]
    sale_ids: Callable[[Any], Iterable[str]]
    apply: Callable[[Any, DeviceAuth, str, str, datetime, Effects], None]
    names_store: bool = False
    # order events read and change order state in the push's transaction and may answer
    # superseded: effect(context, type, payload) -> (status, reason)
    effect: Callable[[orders.PushContext, str, Any], tuple[str, str | None]] | None = None


def _apply_sale(
    sale: SaleCompletedV1, dev: DeviceAuth, event_id: str, type_: str, now: datetime, fx: Effects
) -> None:
    sale_id = sale.sale_id
    day = sale.business_day.isoformat()
    fx.sales.append(
        {
            "sale_id": sale_id,
            "store_id": dev.store_id,
            "device_pk": dev.pk,
            "event_id": event_id,
            "sale_no": sale.sale_no,
            "business_day": day,
            "completed_at": sale.completed_at,
            "total": sale.total,
            "tax_total": sale.tax_total,
            "currency": sale.currency,
            "guide_id": sale.guide_id,
            "lines": len(sale.lines),
        }
    )
    for n, pay in enumerate(sale.payments, start=1):
        fx.payments.append(
            {
                "sale_id": sale_id,
                "n": n,
                "store_id": dev.store_id,
                "business_day": day,
                "method": pay.method,
                "amount": pay.amount,
                "tendered": pay.tendered,
                "change": pay.change,
                "reference": pay.reference,
            }
        )
    for line in sale.lines:
        _move(fx, dev, line.movement_id, line.sku, -line.qty, "sale", event_id, now)


def _apply_movements(
    m: StockMovementsV1, dev: DeviceAuth, event_id: str, type_: str, now: datetime, fx: Effects
) -> None:
    for mv in m.movements:
        _move(fx, dev, mv.movement_id, mv.sku, mv.delta, (mv.reason or type_)[:64], event_id, now)


def _move(
    fx: Effects,
    dev: DeviceAuth,
    movement_id: str,
    sku: str,
    delta: int,
    reason: str,
    event_id: str,
    now: datetime,
) -> None:
    fx.ledger.append(
        {
            "store_id": dev.store_id,
            "movement_id": movement_id,
            "sku": sku,
            "delta": delta,
            "reason": reason,
            "event_id": event_id,
            "recorded_at": now,
        }
    )
    fx.on_hand[sku] += delta


HANDLERS: dict[str, Handler] = {
    SALE_COMPLETED: Handler(
        model=SaleCompletedV1,
        versions=frozenset({1}),
        skus=lambda s: (line.sku for line in s.lines),
        movement_ids=lambda s: (line.movement_id for line in s.lines),
        sale_ids=lambda s: (s.sale_id,),
        apply=_apply_sale,
        names_store=True,
    ),
    **{
        t: Handler(
            model=StockMovementsV1,
            versions=frozenset({1}),
            skus=lambda m: (mv.sku for mv in m.movements),
            movement_ids=lambda m: (mv.movement_id for mv in m.movements),
            sale_ids=lambda m: (),
            apply=_apply_movements,
        )
        for t in STOCK_MOVEMENT_TYPES
    },
    **{
        t: Handler(
            model=model,
            versions=frozenset({1}),
            skus=functools.partial(orders.order_event_skus, t),
            movement_ids=functools.partial(orders.order_event_movement_ids, t),
            sale_ids=lambda m: (),
            apply=lambda *a: None,
            effect=orders.apply_event,
        )
        for t, model in ORDER_EVENT_MODELS.items()
    },
}


# ---------------------------------------------------------------------------------------------
# push


@dataclass
class _Fresh:
    env: EventEnvelope
    text: str
    model: Any = None
    reason: str | None = None


def check_batch(
    dev: DeviceAuth, batch: Sequence[EventEnvelope], max_batch: int = MAX_PUSH_BATCH
) -> None:
    """Whole-request checks: size, order, and that every event is the caller's own."""
    if len(batch) > max_batch:
        raise BatchTooLarge(
            f"a push carries at most {max_batch} events; this one had {len(batch)}",
            {"max": max_batch, "got": len(batch)},
        )
    for a, b in itertools.pairwise(batch):
        if b.seq <= a.seq:
            raise BatchOutOfOrder(
                "events of a push must be in increasing seq order", {"seq": b.seq, "after": a.seq}
            )
    for e in batch:
        if e.device_id != dev.device_id:
            raise DeviceMismatch(
                f"this token belongs to device {dev.device_id} of store {dev.store_id}; "
                f"it cannot push events of device {e.device_id}",
                {"event_id": str(e.event_id), "device_id": e.device_id},
            )


def push(
    db: Database,
    dev: DeviceAuth,
    req: PushRequest,
    *,
    now: datetime | None = None,
    max_batch: int = MAX_PUSH_BATCH,
) -> PushResponse:
    """Apply one push of one device (see the module docstring for every decision)."""
    now = now or utcnow()
    check_batch(dev, req.batch, max_batch)
    try:
        return _push(db, dev, req, now)
    except IntegrityError as error:
        # only a concurrent push of another till using the same sale or movement id can get
        # past the checks in _decide; nothing was written, and the retry will see that id
        raise Unavailable(
            "another push used the same ids at the same moment; retry", type(error.orig).__name__
        ) from error


def _push(db: Database, dev: DeviceAuth, req: PushRequest, now: datetime) -> PushResponse:
    offset = (req.device_time - now).total_seconds()
    with db.write() as conn:
        last = int(
            conn.execute(
                db.lock_rows(select(devices.c.last_applied_seq).where(devices.c.id == dev.pk))
            ).scalar_one()
        )
        results: list[PushResult] = []
        quarantined: list[dict[str, Any]] = []

        dups = [e for e in req.batch if e.seq <= last]
        fresh: list[EventEnvelope] = []
        for e in req.batch:
            if e.seq <= last:
                continue
            if e.seq != last + 1 + len(fresh):
                break
            fresh.append(e)
        stopped = len(dups) + len(fresh) < len(req.batch)

        if dups:
            results.extend(_answer_duplicates(conn, dev, dups, now, quarantined))

        new_rows: list[dict[str, Any]] = []
        fx = Effects()
        octx = orders.PushContext(
            db,
            conn,
            dev.store_id,
            now,
            lambda mid, sku, delta, why, eid: _move(fx, dev, mid, sku, delta, why, eid, now),
            device_id=dev.device_id,
        )
        if fresh:
            decided = _decide(db, conn, dev, fresh)
            for f in decided:
                handler = HANDLERS.get(f.env.type)
                status: str = "rejected" if f.reason else "applied"
                if f.reason is None and handler is not None:
                    if handler.effect is not None:
                        octx.event_id = str(f.env.event_id)
                        status, f.reason = handler.effect(octx, f.env.type, f.model)
                    else:
                        handler.apply(f.model, dev, str(f.env.event_id), f.env.type, now, fx)
                new_rows.append(
                    {
                        "device_pk": dev.pk,
                        "seq": f.env.seq,
                        "event_id": str(f.env.event_id),
                        "type": f.env.type,
                        "schema_version": f.env.schema_version,
                        "payload_hash": f.env.payload_hash,
                        "status": status,
                        "reason": f.reason,
                        "occurred_at": f.env.occurred_at,
                        "received_at": now,
                        "payload": f.text,
                    }
                )
                if status == "rejected":
                    quarantined.append(_quarantine_row(dev, f.env, f.text, str(f.reason), now))
                results.append(
                    PushResult(
                        event_id=f.env.event_id,
                        seq=f.env.seq,
                        status=status,  # type: ignore[arg-type]
                        reason=f.reason,
                    )
                )
            db.bulk_insert(conn, events, new_rows)
            last = fresh[-1].seq
        db.bulk_insert(conn, quarantine, quarantined)
        db.bulk_insert(conn, sales, fx.sales)
        db.bulk_insert(conn, payments, fx.payments)
        db.bulk_insert(conn, stock_ledger, fx.ledger)
        octx.finish(fx.ledger)
        # in SKU order: two tills of one store pushing at once lock rows in the same order
        db.add_to_counters(
            conn, stock_on_hand, {"store_id": dev.store_id}, "on_hand", fx.on_hand, "sku"
        )
        pending = None if req.pending is None else max(0, req.pending - len(results))
        conn.execute(
            update(devices)
            .where(devices.c.id == dev.pk)
            .values(
                last_applied_seq=last,
                last_seen_at=now,
                last_push_at=now,
                clock_offset_s=offset,
                pending_reported=pending,
                oldest_pending_at=req.oldest_pending_at if pending else None,
                app_version=req.app_version,
            )
        )
        conn.execute(
            sync_log.insert().values(
                device_pk=dev.pk,
                kind="push",
                received_at=now,
                device_time=req.device_time,
                clock_offset_s=offset,
                events=len(req.batch),
                applied=sum(r.status == "applied" for r in results),
                last_applied_seq=last,
            )
        )
    octx.announce()
    return PushResponse(
        results=results,
        last_applied_seq=last,
        stopped_at_gap=stopped,
        server_time=now,
        clock_offset_s=offset,
    )


def _answer_duplicates(
    conn: Connection,
    dev: DeviceAuth,
    dups: list[EventEnvelope],
    now: datetime,
    quarantined: list[dict[str, Any]],
) -> list[PushResult]:
    stored = {
        int(r.seq): r
        for r in conn.execute(
            select(
                events.c.seq,
                events.c.event_id,
                events.c.payload_hash,
                events.c.status,
                events.c.reason,
            ).where(events.c.device_pk == dev.pk, events.c.seq.in_([e.seq for e in dups]))
        )
    }
    out = []
    for e in dups:
        r = stored.get(e.seq)
        if r is not None and r.event_id == str(e.event_id) and r.payload_hash == e.payload_hash:
            out.append(
                PushResult(
                    event_id=e.event_id,
                    seq=e.seq,
                    status="duplicate",
                    original_status=r.status,
                    reason=r.reason,
                )
            )
            continue
        if r is None:
            reason = f"idempotency_mismatch: HQ has no record of seq {e.seq} though it is below last_applied_seq"
        elif r.event_id != str(e.event_id):
            reason = f"idempotency_mismatch: seq {e.seq} was already used by event {r.event_id}"
        else:
            reason = (
                "idempotency_mismatch: this event was already received with a different payload"
            )
        quarantined.append(_quarantine_row(dev, e, _payload_text(e.payload), reason, now))
        out.append(PushResult(event_id=e.event_id, seq=e.seq, status="rejected", reason=reason))
    return out


def _decide(
    db: Database, conn: Connection, dev: DeviceAuth, fresh: list[EventEnvelope]
) -> list[_Fresh]:
    """Validate each new event and check every unique key it uses (event, sale, movement ids,
    SKUs) against HQ and against the events before it in the same batch."""
    ids = [str(e.event_id) for e in fresh]
    known_ids = db.existing(conn, events.c.event_id, ids)
    seen: set[str] = set()
    decided: list[_Fresh] = []
    for e in fresh:
        text = _payload_text(e.payload)
        f = _Fresh(e, text)
        eid = str(e.event_id)
        handler = HANDLERS.get(e.type)
        if eid in known_ids or eid in seen:
            f.reason = "idempotency_mismatch: this event id was already used for another seq"
        elif hashlib.sha256(text.encode("utf-8")).hexdigest() != e.payload_hash:
            f.reason = "payload_hash_mismatch: the payload hash does not match the payload"
        elif handler is None:
            f.reason = f"unsupported_event_type: HQ does not apply {e.type!r} events"
        elif e.schema_version not in handler.versions:
            f.reason = f"unsupported_schema_version: {e.type} version {e.schema_version} (HQ knows {sorted(handler.versions)})"
        else:
            try:
                f.model = handler.model.model_validate(e.payload)
            except ValidationError as error:
                f.reason = "invalid_payload: " + _short(error)
        seen.add(eid)
        decided.append(f)

    valid = [f for f in decided if f.reason is None]
    skus = {s for f in valid for s in HANDLERS[f.env.type].skus(f.model)}
    mids = [m for f in valid for m in HANDLERS[f.env.type].movement_ids(f.model)]
    sids = [s for f in valid for s in HANDLERS[f.env.type].sale_ids(f.model)]
    known_skus = db.existing(conn, products.c.sku, sorted(skus))
    used_mids = db.existing(conn, stock_ledger.c.movement_id, mids)
    used_sales = db.existing(conn, sales.c.sale_id, sids)
    for f in valid:
        h = HANDLERS[f.env.type]
        if h.names_store and (
            f.model.store_id != dev.store_id or f.model.device_id != dev.device_id
        ):
            f.reason = (
                f"store_mismatch: the payload names {f.model.store_id}/{f.model.device_id} "
                f"but the token is {dev.store_id}/{dev.device_id}"
            )
            continue
        unknown = sorted({s for s in h.skus(f.model) if s not in known_skus})
        if unknown:
            f.reason = (
                "unknown_sku: " + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            )
            continue
        sale_ids = list(h.sale_ids(f.model))
        if any(s in used_sales for s in sale_ids):
            f.reason = f"sale_id_reused: sale {sale_ids[0]} is already recorded at HQ"
            continue
        mv = list(h.movement_ids(f.model))
        reused = [m for m in mv if m in used_mids]
        if reused:
            f.reason = f"movement_id_reused: {reused[0]}"
            continue
        used_sales.update(sale_ids)
        used_mids.update(mv)
    return decided


def _payload_text(payload: dict[str, Any]) -> str:
    try:
        # the payload came from JSON, so only JSON types are in it; a float (which a till
        # never writes) is refused by the typed payload models rather than walked for here
        return canonical_json(payload, check_floats=False)
    except TypeError:  # floats or the like: keep it readable for the quarantine
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)


def _quarantine_row(
    dev: DeviceAuth, e: EventEnvelope, text: str, reason: str, now: datetime
) -> dict[str, Any]:
    return {
        "store_id": dev.store_id,
        "device_pk": dev.pk,
        "seq": e.seq,
        "event_id": str(e.event_id),
        "type": e.type,
        "reason": reason,
        "payload": text,
        "received_at": now,
    }


def _short(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        loc = ".".join(str(x) for x in item["loc"])
        parts.append(f"{loc}: {item['msg']}" if loc else item["msg"])
    return "; ".join(parts)
