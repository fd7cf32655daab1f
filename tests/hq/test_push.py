"""Push: exactly once, in seq order, never blocked by a bad event (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select

from hq import admin
from hq.db import Database, events, quarantine, sales, stock_ledger, utcnow
from sync import protocol as p
from tests.hq.support import Till, add_till, register, sale_payload, seed_catalog

DAY = date(2026, 11, 22)


async def recon(client: httpx.AsyncClient, till: Till, **params: str) -> p.ReconciliationResponse:
    r = await client.get(
        p.RECONCILIATION_PATH,
        params={"business_day": DAY.isoformat(), **params},
        headers=till.headers,
    )
    assert r.status_code == 200, r.text
    return p.ReconciliationResponse.model_validate_json(r.content)


def count(db: Database, table, *where) -> int:  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


async def test_sales_are_applied_with_payments_and_stock(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A", "B"])
    till = register(db, "S1")
    till.movements([("A", 10), ("B", 5)])
    till.sale([("A", 2, 1000), ("B", 1, 500)], payments=[("cash", 2000), ("wallet", 500)])
    till.sale([("A", 1, 1000)], payments=[("card", 1000)])

    res = await till.push(client, till.outbox)

    assert [r.status for r in res.results] == ["applied"] * 3
    assert res.last_applied_seq == 3 and not res.stopped_at_gap
    rec = await recon(client, till)
    assert rec.sales.count == 2 and rec.sales.total == 3500
    assert {m: t.amount for m, t in rec.sales.by_method.items()} == {
        "cash": 2000,
        "wallet": 500,
        "card": 1000,
    }
    assert {o.sku: o.on_hand for o in rec.on_hand} == {"A": 7, "B": 4}
    assert rec.last_applied_seq == 3 and rec.quarantined == 0


async def test_every_batch_sent_twice_changes_nothing_the_second_time(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    for _ in range(6):
        till.sale([("A", 1, 1000)])
    for batch in (till.outbox[:2], till.outbox[2:5], till.outbox[5:]):
        first = await till.push(client, batch)
        again = await till.push(client, batch)
        assert {r.status for r in first.results} == {"applied"}
        assert {r.status for r in again.results} == {"duplicate"}
        assert {r.original_status for r in again.results} == {"applied"}
        assert again.last_applied_seq == first.last_applied_seq
    rec = await recon(client, till)
    assert rec.sales.count == 6 and rec.on_hand[0].on_hand == -6
    assert count(db, stock_ledger) == 6


async def test_a_gap_stops_the_batch_and_the_resend_fills_it(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    for _ in range(5):
        till.sale([("A", 1, 100)])
    e1, e2, e3, e4, e5 = till.outbox

    res = await till.push(client, [e1, e2, e4, e5])

    assert [r.seq for r in res.results] == [1, 2]
    assert res.stopped_at_gap and res.last_applied_seq == 2
    res = await till.push(client, [e3, e4, e5])
    assert [(r.seq, r.status) for r in res.results] == [
        (3, "applied"),
        (4, "applied"),
        (5, "applied"),
    ]
    assert (await recon(client, till)).sales.count == 5


async def test_a_batch_that_starts_past_the_gap_applies_nothing(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    till.sale([("A", 1, 100)])
    till.sale([("A", 1, 100)])
    res = await till.push(client, [till.outbox[1]])
    assert res.results == [] and res.stopped_at_gap and res.last_applied_seq == 0


async def test_a_reused_event_id_with_another_payload_is_refused(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    first = till.sale([("A", 1, 1000)])
    await till.push(client, [first])

    # the same seq and event id, another payload: the first one stays, nothing moves
    forged = p.EventEnvelope.build(
        event_id=first.event_id,
        device_id=first.device_id,
        seq=1,
        type=first.type,
        occurred_at=first.occurred_at,
        payload={**first.payload, "total": 1},
    )
    res = await till.push(client, [forged])
    assert res.results[0].status == "rejected"
    assert p.reason_code(res.results[0].reason) == "idempotency_mismatch"
    assert res.last_applied_seq == 1

    # an event id already used, under a new seq: quarantined, counts as processed, no effect
    reused = till.event(p.SALE_COMPLETED, till.outbox[0].payload, event_id=first.event_id)
    after = till.sale([("A", 1, 1000)])
    res = await till.push(client, [reused, after])
    assert [(r.status, p.reason_code(r.reason)) for r in res.results] == [
        ("rejected", "idempotency_mismatch"),
        ("applied", None),
    ]
    rec = await recon(client, till)
    assert rec.sales.count == 2 and rec.sales.total == 2000 and rec.quarantined == 2


async def test_bad_events_are_quarantined_and_never_block_later_ones(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    till.sale([("A", 1, 1000)])
    till.sale([("NOPE", 1, 1000)])  # unknown SKU
    till.event(p.SALE_COMPLETED, {"sale_id": "x"})  # malformed payload
    bad_hash = till.event("stock.adjusted", {"movements": []})
    till.outbox[-1] = bad_hash.model_copy(update={"payload_hash": "0" * 64})
    till.event("loyalty.points_earned", {"points": 3})  # a type HQ does not apply
    till.event(
        "stock.received",
        {"movements": [{"movement_id": str(uuid4()), "sku": "A", "delta": 1}]},
        schema_version=9,
    )
    till.sale([("A", 2, 1000)])

    res = await till.push(client, till.outbox)

    got = [(r.status, p.reason_code(r.reason)) for r in res.results]
    assert got == [
        ("applied", None),
        ("rejected", "unknown_sku"),
        ("rejected", "invalid_payload"),
        ("rejected", "payload_hash_mismatch"),
        ("rejected", "unsupported_event_type"),
        ("rejected", "unsupported_schema_version"),
        ("applied", None),
    ]
    assert res.last_applied_seq == 7
    assert all(p.reason_code(r.reason) in p.REJECT_REASONS for r in res.results if r.reason)
    rec = await recon(client, till)
    assert rec.sales.count == 2 and rec.quarantined == 5
    assert {o.sku: o.on_hand for o in rec.on_hand} == {"A": -3}

    # a re-push tells the store how each went the first time
    again = await till.push(client, till.outbox)
    assert [r.effective_status for r in again.results] == [s for s, _ in got]
    assert count(db, quarantine) == 5


async def test_more_tills_pushing_at_once_than_the_pool_has_connections(
    db: Database, client: httpx.AsyncClient
) -> None:
    """Each push takes its pooled connections one after another (never one while holding
    another), so a crowd of tills cannot leave every connection waiting for a second one."""
    seed_catalog(db, ["A"])
    tills = [register(db, f"S{i}") for i in range(24)]
    for till in tills:
        till.sale([("A", 1, 1000)])

    answers = await asyncio.gather(*(till.push(client, till.outbox) for till in tills))

    assert [[r.status for r in a.results] for a in answers] == [["applied"]] * len(tills)
    assert count(db, sales) == len(tills)


async def test_hq_keeps_and_checks_each_payload_in_the_tills_own_spelling(
    db: Database, client: httpx.AsyncClient
) -> None:
    """HQ spells payloads with a fast encoder and falls back to the reference one: what it
    stores and how it judges the hash must not depend on which one ran."""
    seed_catalog(db, ["A"])
    till = register(db, "S1")

    def sale(n: int, note: object) -> p.EventEnvelope:
        payload = {**sale_payload("S1", "till-1", [("A", 1, 1000)], sale_no=n), "note": note}
        return till.event(p.SALE_COMPLETED, payload)

    tricky = sale(1, '商品\u2028\x1f\\ "é" /')
    huge = sale(2, 2**70)  # beyond 64 bits: only the json module spells it
    bad = sale(3, 2**70)
    till.outbox[-1] = bad.model_copy(update={"payload_hash": p.payload_hash({"other": 1})})

    res = await till.push(client, till.outbox)

    assert [(r.status, p.reason_code(r.reason)) for r in res.results] == [
        ("applied", None),
        ("applied", None),
        ("rejected", "payload_hash_mismatch"),
    ]
    with db.read() as conn:
        stored = dict(conn.execute(select(events.c.seq, events.c.payload)).all())
    assert stored[1] == p.canonical_json(tricky.payload)
    assert stored[2] == p.canonical_json(huge.payload)


async def test_reused_sale_and_movement_ids_are_quarantined(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    sale = till.sale([("A", 1, 1000)])
    twin = till.event(p.SALE_COMPLETED, {**sale.payload, "short_id": "again"})
    moved = till.event(
        "stock.adjusted",
        {
            "movements": [
                {"movement_id": sale.payload["lines"][0]["movement_id"], "sku": "A", "delta": 5}
            ]
        },
    )
    res = await till.push(client, [sale, twin, moved])
    assert [p.reason_code(r.reason) for r in res.results] == [
        None,
        "sale_id_reused",
        "movement_id_reused",
    ]
    assert (await recon(client, till)).on_hand[0].on_hand == -1


async def test_stock_movements_and_sales_of_a_retired_product(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A", "B"])
    till = register(db, "S1")
    till.movements([("A", 10)], "stock.received")
    till.movements([("A", -1)], "stock.adjusted")
    assert admin.deactivate_products(db, ["B"]) == 1
    till.sale([("B", 1, 300)])  # sold before the till heard B was retired: still a fact
    res = await till.push(client, till.outbox)
    assert [r.status for r in res.results] == ["applied"] * 3
    assert {o.sku: o.on_hand for o in (await recon(client, till)).on_hand} == {"A": 9, "B": -1}


async def test_a_till_cannot_push_as_another_device_or_store(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    mine = register(db, "S1")
    other = register(db, "S2", "till-9")
    mine.sale([("A", 1, 100)])

    # events of another device: the whole request is refused
    forged = other.sale([("A", 1, 100)])
    r = await client.post(p.PUSH_PATH, json=mine.push_body([forged]), headers=mine.headers)
    assert r.status_code == 403
    assert p.ErrorBody.model_validate_json(r.content).error.code == "device_mismatch"

    # a payload naming another store under my own device id: quarantined
    lie = mine.event(
        p.SALE_COMPLETED, {**mine.outbox[0].payload, "store_id": "S2", "sale_id": str(uuid4())}
    )
    res = await mine.push(client, mine.outbox)
    assert [p.reason_code(r.reason) for r in res.results] == [None, "store_mismatch"]
    assert lie.seq == 2

    # and S2 sees none of S1's sales or stock
    rec = await recon(client, other)
    assert rec.store_id == "S2" and rec.sales.count == 0 and rec.on_hand == []
    assert [d.device_id for d in rec.devices] == ["till-9"] and rec.last_applied_seq == 0


async def test_two_tills_of_one_store_share_its_stock(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    t1 = register(db, "S1")
    t2 = add_till(db, "S1", "till-2")
    t1.sale([("A", 1, 100)])
    t2.sale([("A", 2, 100)])
    t2.sale([("A", 1, 100)])
    assert (await t1.push(client, t1.outbox)).last_applied_seq == 1
    assert (await t2.push(client, t2.outbox)).last_applied_seq == 2
    rec = await recon(client, t2)
    assert rec.sales.count == 3 and rec.on_hand[0].on_hand == -4
    assert {d.device_id: d.last_applied_seq for d in rec.devices} == {"till-1": 1, "till-2": 2}


async def test_push_records_clock_offset_and_outbox_lag(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    for _ in range(3):
        till.sale([("A", 1, 100)])
    ahead = utcnow() + timedelta(minutes=7)
    res = await till.push(client, till.outbox[:1], device_time=ahead, pending=3)
    assert 6 * 60 < res.clock_offset_s < 8 * 60
    [line] = admin.report(db)
    assert line.clock_flagged and line.pending_reported == 2 and line.last_applied_seq == 1
    assert line.last_push is not None and line.sales_count == 1

    await till.push(client, till.outbox[1:], device_time=utcnow(), pending=2)
    [line] = admin.report(db)
    assert not line.clock_flagged and line.pending_reported == 0 and line.sales_count == 3


async def test_an_empty_push_reports_where_hq_stands(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    res = await till.push(client, [])
    assert res.results == [] and res.last_applied_seq == 0 and not res.stopped_at_gap


def test_the_event_log_holds_each_seq_once(db: Database) -> None:
    # a structural guarantee the store side relies on: (device, seq) is the key of HQ's log
    assert {c.name for c in events.primary_key.columns} == {"device_pk", "seq"}
    assert count(db, sales) == 0


@pytest.mark.parametrize("n", [p.MAX_PUSH_BATCH + 1])
async def test_an_oversized_batch_is_refused_whole(
    db: Database, client: httpx.AsyncClient, n: int
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    batch = [till.movements([("A", 1)]) for _ in range(n)]
    r = await client.post(p.PUSH_PATH, json=till.push_body(batch), headers=till.headers)
    assert r.status_code == 422
    assert p.ErrorBody.model_validate_json(r.content).error.code == "batch_too_large"
    assert count(db, stock_ledger) == 0


async def test_the_stores_end_of_day_conclusion_shows_in_the_report(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    [line] = admin.report(db)
    assert line.stock_mismatches is None
    body = p.EodReport(
        business_day=DAY,
        device_time=utcnow(),
        verified=False,
        stock_mismatches=3,
        differences=["A: till 2, HQ 3"],
    ).to_dict()
    r = await client.post(p.RECONCILIATION_PATH, json=body, headers=till.headers)
    assert r.status_code == 200, r.text
    assert p.EodReceipt.model_validate_json(r.content).store_id == "S1"
    [line] = admin.report(db)
    assert line.stock_mismatches == 3 and line.eod_day == "2026-11-22" and not line.eod_verified


async def test_values_the_database_cannot_hold_are_quarantined_not_a_500(
    db: Database, client: httpx.AsyncClient
) -> None:
    """A text with the NUL character (PostgreSQL's text refuses it) or a number beyond 64 bits
    (every integer column is BIGINT) is a bad event: quarantined, never a failed push."""
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    nul = sale_payload(till.store_id, till.device_id, [("A", 1, 1000)], sale_no=1)
    nul["lines"][0]["name"] = "bad\x00name"
    till.event(p.SALE_COMPLETED, nul)
    huge = sale_payload(till.store_id, till.device_id, [("A", 1, 1000)], sale_no=2)
    huge["lines"][0]["qty"] = 2**70
    till.event(p.SALE_COMPLETED, huge)
    till.movements([("A", 2**63)])
    till.sale([("A", 1, 1000)])

    res = await till.push(client, till.outbox)

    got = [(r.status, p.reason_code(r.reason)) for r in res.results]
    assert got == [("rejected", "invalid_payload")] * 3 + [("applied", None)]
    assert res.last_applied_seq == 4
    assert count(db, quarantine) == 3
    rec = await recon(client, till)
    assert {o.sku: o.on_hand for o in rec.on_hand} == {"A": -1}
