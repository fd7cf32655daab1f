"""Online orders at HQ: intake, dispatch, the stores' steps and every kind of reassignment, on
SQLite and on PostgreSQL, through HQ's real HTTP API (in-process)."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from hq import admin, checks, orders
from hq.cli import cli
from hq.db import Database, availability_blocks, quarantine
from sync import protocol as p
from tests.hq.order_support import BEIJING, chain, handover_payload, kinds, live, order_body
from tests.hq.support import add_till


async def test_intake_is_idempotent_by_platform_order_id(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        body = order_body([("A", 2)], ref="TM-1")
        first = await c.client.post("/orders/v1", json=body, headers=c.auth)
        again = await c.client.post("/orders/v1", json=body, headers=c.auth)
        assert first.status_code == 201 and again.status_code == 200
        assert again.json()["order_id"] == first.json()["order_id"]
        assert len(again.json()["assignments"]) == 1  # dispatched once, not twice

        other = order_body([("A", 3)], ref="TM-1")
        clash = await c.client.post("/orders/v1", json=other, headers=c.auth)
        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "conflict"

        got = await c.client.get(f"/orders/v1/{first.json()['order_id']}", headers=c.auth)
        assert got.status_code == 200
        assert [t["kind"] for t in got.json()["timeline"]] == ["created", "assigned"]

        bad_key = await c.client.post(
            "/orders/v1", json=body, headers={"Authorization": "Bearer nope"}
        )
        assert bad_key.status_code == 401
        unknown = await c.client.post("/orders/v1", json=order_body([("ZZZ", 1)]), headers=c.auth)
        assert unknown.status_code == 422 and "ZZZ" in unknown.json()["error"]["message"]
        no_address = dict(body, delivery={"type": "delivery"})
        assert (
            await c.client.post("/orders/v1", json=no_address, headers=c.auth)
        ).status_code == 422


async def test_dispatch_picks_the_nearer_store_with_stock(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 2), ("B", 5)])
        await c.stock("S2", [("A", 5), ("B", 5)])
        await c.stock("S3", [("A", 50)])
        near = await c.order([("A", 2)])
        assert live(near) == [("S1", 1, "assigned")]
        # S1's two A are held for that order now: the next one goes to S2
        second = await c.order([("A", 1), ("B", 1)])
        assert live(second) == [("S2", 1, "assigned")]
        assert orders.holds(db, "S1") == {"A": 2}
        # a pickup goes to the chosen store even when another is nearer
        pickup = await c.order([("B", 1)], pickup="S2")
        assert live(pickup) == [("S2", 1, "assigned")]
        assert pickup["pickup_code"] and len(pickup["pickup_code"]) == 6
        assert pickup["pickup_qr"] == f"PICKUP:{pickup['order_id']}:{pickup['pickup_code']}"
        row = (await c.rows("S2"))[pickup["order_id"]]
        assert row["pickup_code_hash"] == p.pickup_code_hash(pickup["pickup_code"])
        assert row["lines"] == [{"line_id": "L1", "sku": "B", "name": "商品 B", "qty": 1}]


async def test_stale_stores_get_no_orders(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        c.clock.advance(hours=1)  # past the 30 minutes: only S2 is heard from again
        await c.touch("S2")
        o = await c.order([("A", 1)])
        assert live(o) == [("S2", 1, "assigned")]


async def test_split_across_stores_and_backorder(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 1)])
        await c.stock("S2", [("B", 1)])
        split = await c.order([("A", 1), ("B", 1)])
        assert sorted(live(split)) == [("S1", 1, "assigned"), ("S2", 1, "assigned")]
        s1 = (await c.rows("S1"))[split["order_id"]]
        assert [ln["sku"] for ln in s1["lines"]] == ["A"]  # only the store's own part

        none = await c.order([("C", 1)])
        assert none["state"] == "backorder" and live(none) == []
        assert "backordered" in kinds(none)
        await c.stock("S3", [("C", 3)])  # far away, but it has it
        c.clock.advance(minutes=16)
        await c.touch("S3")
        assert c.tick().retried == 1
        assert live(c.view(none["order_id"])) == [("S3", 1, "assigned")]

        admin.set_config(db, "orders.split", False)
        orders.reload_settings(db)  # HQ reads settings every few seconds; now at once
        await c.stock("S1", [("A", 1)])
        await c.stock("S2", [("B", 1)])
        whole = await c.order([("A", 1), ("B", 1)])
        assert whole["state"] == "backorder" and live(whole) == []


async def test_reject_redispatches_to_the_other_store_and_lowers_availability(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        o = await c.order([("A", 1)])
        oid = o["order_id"]
        res = await c.send(
            "S1", p.ORDER_REJECTED, {"order_id": oid, "epoch": 1, "reason": "damaged"}
        )
        assert res.status == "applied"
        v = c.view(oid)
        assert live(v) == [("S2", 2, "assigned")]
        assert kinds(v)[-2:] == ["rejected", "reassigned"]
        assert (await c.rows("S1"))[oid]["assignment"] == "revoked"
        assert orders.holds(db, "S1") == {}
        # HQ no longer counts S1's A: the next order for A goes to S2 as well
        nxt = await c.order([("A", 1)])
        assert live(nxt) == [("S2", 1, "assigned")]
        # a receipt of A at S1 lifts the block
        await c.stock("S1", [("A", 1)])
        assert live(await c.order([("A", 1)])) == [("S1", 1, "assigned")]


async def test_no_answer_by_accept_by_redispatches_with_next_epoch(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        o = await c.order([("A", 1)])
        c.clock.advance(minutes=5)
        assert not c.tick()
        c.clock.advance(minutes=6)
        await c.touch("S2")
        assert c.tick().expired == 1
        v = c.view(o["order_id"])
        assert live(v) == [("S2", 2, "assigned")]
        assert "expired" in kinds(v)
        assert (await c.rows("S2"))[o["order_id"]]["epoch"] == 2


async def test_accepted_order_is_reassigned_only_after_the_store_agrees(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 1)]))["order_id"]
        assert (
            await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        ).status == "applied"
        done = orders.reassign(db, oid, now=c.clock())
        assert done == ["S1: cancel requested (waiting for the store)"]
        assert live(c.view(oid)) == [("S1", 1, "cancel_requested")]
        assert (await c.rows("S1"))[oid]["assignment"] == "cancel_requested"
        res = await c.send("S1", p.ORDER_CANCEL_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "applied"
        v = c.view(oid)
        assert live(v) == [("S2", 2, "assigned")]
        assert "cancel_accepted" in kinds(v)
        assert (await c.rows("S1"))[oid]["assignment"] == "revoked"

        # a refusal keeps the store on it
        oid2 = (await c.order([("A", 1)]))["order_id"]
        store = live(c.view(oid2))[0][0]
        await c.send(store, p.ORDER_ACCEPTED, {"order_id": oid2, "epoch": 1})
        orders.reassign(db, oid2, now=c.clock())
        await c.send(
            store, p.ORDER_CANCEL_REFUSED, {"order_id": oid2, "epoch": 1, "reason": "packed"}
        )
        assert live(c.view(oid2)) == [(store, 1, "accepted")]


async def test_forced_reassignment_when_the_store_is_unreachable(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 1)]))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        orders.reassign(db, oid, now=c.clock())  # S1 is reachable: HQ asks and waits
        c.clock.advance(hours=1)
        await c.touch("S2")
        assert c.tick().forced == 0  # not silent long enough yet
        c.clock.advance(hours=1, minutes=5)
        await c.touch("S2")
        assert c.tick().forced == 1
        v = c.view(oid)
        assert live(v) == [("S2", 2, "assigned")]
        forced = [t for t in v["timeline"] if t["kind"] == "forced_reassign"]
        assert forced and forced[0]["store_id"] == "S1" and forced[0]["epoch"] == 1


async def test_full_pickup_flow_moves_stock_at_handover(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5), ("B", 5)])
        o = await c.order([("A", 2), ("B", 1)], pickup="S1")
        oid = o["order_id"]
        for type_, extra in [
            (p.ORDER_ACCEPTED, {}),
            (
                p.ORDER_PICKED,
                {
                    "lines": [
                        {"line_id": "L1", "sku": "A", "qty_ordered": 2, "qty_picked": 2},
                        {"line_id": "L2", "sku": "B", "qty_ordered": 1, "qty_picked": 1},
                    ]
                },
            ),
            (p.ORDER_READY, {}),
        ]:
            res = await c.send("S1", type_, {"order_id": oid, "epoch": 1, **extra})
            assert res.status == "applied", res
        assert checks.on_hand(db, "S1") == {"A": 5, "B": 5}  # nothing moves at pick
        res = await c.send(
            "S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2), ("B", 1)])
        )
        assert res.status == "applied"
        assert checks.on_hand(db, "S1") == {"A": 3, "B": 4}
        assert orders.holds(db, "S1") == {}
        v = c.view(oid)
        assert v["state"] == "completed"
        assert kinds(v) == [
            "created",
            "assigned",
            "accepted",
            "picked",
            "ready",
            "handed_over",
            "completed",
        ]
        assert all(t["at"] and t["store_id"] in ("S1", None) for t in v["timeline"])
        assert (await c.rows("S1"))[oid]["assignment"] == "completed"
        # a step that cannot follow is refused and quarantined
        res = await c.send("S1", p.ORDER_READY, {"order_id": oid, "epoch": 1})
        assert res.status == "rejected" and p.reason_code(res.reason) == "illegal_transition"
        res = await c.send("S2", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "rejected" and p.reason_code(res.reason) == "unknown_order"

        shown = CliRunner().invoke(cli, ["order", "show", oid], obj={"database": db})
        assert shown.exit_code == 0, shown.output
        for word in ("handed_over", "S1", "epoch 1", o["pickup_code"], o["pickup_qr"]):
            assert word in shown.output


async def test_stale_epoch_events_are_superseded_and_their_stock_still_moves(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 2)]))["order_id"]
        c.clock.advance(minutes=11)
        await c.touch("S2")
        c.tick()  # S1 said nothing: S2 gets it under epoch 2
        assert live(c.view(oid)) == [("S2", 2, "assigned")]
        # S1 was offline and worked under epoch 1 all along
        res = await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "superseded"
        res = await c.send("S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2)]))
        assert res.status == "superseded"
        assert checks.on_hand(db, "S1") == {"A": 3}  # the goods left S1: stock moved
        v = c.view(oid)
        assert v["state"] == "completed" and live(v) == []
        s2 = next(a for a in v["assignments"] if a["store_id"] == "S2")
        assert s2["state"] == "voided"  # the newer assignment is called off
        assert (await c.rows("S2"))[oid]["assignment"] == "cancelled"
        assert orders.holds(db, "S2") == {}
        assert orders.incidents(db) == []
        stale = [t for t in v["timeline"] if t["kind"] == "handed_over"]
        assert stale[0]["store_id"] == "S1" and stale[0]["detail"]["stale"] is True
        log = checks.event_log(db, "S1", "till-1")
        assert [e.status for e in log][-2:] == ["superseded", "superseded"]


async def test_stale_handover_after_the_newer_one_opens_a_double_fulfilment_incident(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 1)]))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        c.clock.advance(hours=3)  # S1 silent past the force limit
        await c.touch("S2")
        assert orders.reassign(db, oid, now=c.clock()) == ["S1: forced (unreachable)"]
        for type_, extra in [
            (p.ORDER_ACCEPTED, {}),
            (
                p.ORDER_PICKED,
                {"lines": [{"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1}]},
            ),
        ]:
            assert (
                await c.send("S2", type_, {"order_id": oid, "epoch": 2, **extra})
            ).status == "applied"
        res = await c.send(
            "S2", p.ORDER_SHIPPED, {**handover_payload(oid, 2, [("A", 1)]), "tracking": "SF123"}
        )
        assert res.status == "applied"
        # S1 comes back: it had handed the goods over too
        res = await c.send("S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 1)]))
        assert res.status == "superseded"
        assert checks.on_hand(db, "S1") == {"A": 4} and checks.on_hand(db, "S2") == {"A": 4}
        found = orders.incidents(db)
        assert len(found) == 1 and found[0]["kind"] == "double_fulfilment"
        assert found[0]["stores"] == ["S1", "S2"] and found[0]["order_id"] == oid
        out = CliRunner().invoke(cli, ["report"], obj={"database": db})
        assert out.exit_code == 0, out.output
        assert "double_fulfilment" in out.output and oid in out.output


async def test_hold_at_risk_and_short_pick_resource_the_missing_units(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 3), ("B", 3)])
        await c.stock("S2", [("A", 5), ("B", 5)])
        oid = (await c.order([("A", 2), ("B", 2)]))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        # a walk-in sale took one held A at S1
        res = await c.send(
            "S1",
            p.ORDER_HOLD_AT_RISK,
            {
                "order_id": oid,
                "epoch": 1,
                "sku": "A",
                "shortfall": 1,
                "sale_id": "8b0c3a4e-0000-4000-8000-000000000001",
            },
        )
        assert res.status == "applied"
        v = c.view(oid)
        assert sorted(live(v)) == [("S1", 1, "accepted"), ("S2", 2, "assigned")]
        row = (await c.rows("S1"))[oid]
        assert {ln["sku"]: ln["qty"] for ln in row["lines"]} == {"A": 1, "B": 2}
        assert orders.holds(db, "S1") == {"A": 1, "B": 2}
        assert {ln["sku"]: ln["qty"] for ln in (await c.rows("S2"))[oid]["lines"]} == {"A": 1}
        # S1 then finds only one B on the shelf: the other goes elsewhere too
        res = await c.send(
            "S1",
            p.ORDER_PICKED,
            {
                "order_id": oid,
                "epoch": 1,
                "lines": [
                    {"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1},
                    {
                        "line_id": "L2",
                        "sku": "B",
                        "qty_ordered": 2,
                        "qty_picked": 1,
                        "reason": "damaged",
                    },
                ],
            },
        )
        assert res.status == "applied"
        v = c.view(oid)
        # one row per order and store: S2's part not yet accepted grows under a new epoch
        assert sorted(live(v)) == [("S1", 1, "picked"), ("S2", 3, "assigned")]
        assert "merged" in kinds(v)
        row = (await c.rows("S2"))[oid]
        assert row["epoch"] == 3 and {ln["sku"]: ln["qty"] for ln in row["lines"]} == {
            "A": 1,
            "B": 1,
        }
        assert "short_picked" in kinds(v)
        assert orders.holds(db, "S1") == {"A": 1, "B": 1}
        assert orders.holds(db, "S2") == {"A": 1, "B": 1}


async def test_orders_stream_shows_each_store_only_its_own_orders(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S3", [("B", 5)])
        mine = (await c.order([("A", 1)]))["order_id"]
        theirs = (await c.order([("B", 1)], at=BEIJING))["order_id"]
        assert set(await c.rows("S1")) == {mine}
        assert set(await c.rows("S3")) == {theirs}
        assert await c.rows("S2") == {}
        # the snapshot (a new till, or a reset) holds the same rows
        _head, rows = checks.stream_state(db, "orders", "S1")
        assert set(rows) == {mine} and rows[mine]["assignment"] == "assigned"
        snap = await c.client.get("/sync/v1/snapshot/orders", headers=c.tills["S1"].headers)
        assert snap.status_code == 200 and mine in snap.text and theirs not in snap.text


async def test_endless_aisle_request_from_a_till_creates_a_normal_order(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S2", [("C", 4)])
        request = {
            "request_id": "REQ-S1-0001",
            "lines": [{"sku": "C", "qty": 2}],
            "customer": {"name": "韩梅梅", "phone": "13900000000"},
            "address": {"text": "南京东路 1 号", "lat": "31.2350", "lon": "121.4800"},
            "delivery": "delivery",
            "origin_store": "S1",
        }
        res = await c.send("S1", p.ORDER_REQUESTED, request)
        assert res.status == "applied", res
        again = await c.send("S1", p.ORDER_REQUESTED, request)  # a new event, same request
        assert again.status == "applied"
        found = CliRunner().invoke(cli, ["order", "list", "--json"], obj={"database": db})
        made = [ln for ln in found.output.splitlines() if "REQ-S1-0001" in ln]
        assert len(made) == 1
        import json

        oid = json.loads(made[0])["order_id"]
        v = c.view(oid)
        assert v["origin_store"] == "S1" and v["platform"] == orders.ENDLESS_AISLE
        assert live(v) == [("S2", 1, "assigned")]
        wrong = await c.send(
            "S1", p.ORDER_REQUESTED, {**request, "request_id": "R2", "origin_store": "S2"}
        )
        assert wrong.status == "rejected" and p.reason_code(wrong.reason) == "store_mismatch"


async def test_an_order_called_off_after_acceptance_is_cancelled_at_the_store(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        oid = (await c.order([("A", 2)]))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert orders.live_assignments(db, "S1") == {oid: (1, "accepted", {"A": 2})}
        orders.reassign(db, oid, now=c.clock(), cancel=True)
        assert (await c.rows("S1"))[oid]["assignment"] == "cancel_requested"
        await c.send("S1", p.ORDER_CANCEL_ACCEPTED, {"order_id": oid, "epoch": 1})
        v = c.view(oid)
        assert v["state"] == "cancelled" and live(v) == []
        assert (await c.rows("S1"))[oid]["assignment"] == "cancelled"
        assert orders.holds(db, "S1") == {} and orders.live_assignments(db, "S1") == {}


def _risk(order_id: str, epoch: int, sku: str, shortfall: int) -> dict[str, object]:
    return {
        "order_id": order_id,
        "epoch": epoch,
        "sku": sku,
        "shortfall": shortfall,
        "sale_id": "8b0c3a4e-0000-4000-8000-000000000002",
    }


def _quarantined(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(quarantine)).scalar_one())


def _blocked(db: Database, store_id: str) -> dict[str, str]:
    with db.read() as conn:
        return {
            r.sku: r.reason
            for r in conn.execute(
                select(availability_blocks).where(availability_blocks.c.store_id == store_id)
            )
        }


async def test_hold_at_risk_before_the_store_answered_takes_those_lines_like_a_rejection(
    db: Database,
) -> None:
    """The store held the order from its arrival and a till sale ate part of it before anyone
    answered: the store is not asked for the rest of that line; the line goes whole to a store
    that has it, the SKU is blocked at the store, and the store keeps what it still has."""
    async with chain(db) as c:
        await c.stock("S1", [("A", 3), ("B", 3)])
        await c.stock("S2", [("A", 5), ("B", 5)])
        oid = (await c.order([("A", 2), ("B", 1)]))["order_id"]
        assert live(c.view(oid)) == [("S1", 1, "assigned")]
        res = await c.send("S1", p.ORDER_HOLD_AT_RISK, _risk(oid, 1, "A", 1))
        assert res.status == "applied"
        v = c.view(oid)
        assert sorted(live(v)) == [("S1", 1, "assigned"), ("S2", 2, "assigned")]
        risk = next(t for t in v["timeline"] if t["kind"] == "hold_at_risk")
        assert risk["detail"]["resourced"] == 2 and risk["detail"]["unanswered"] is True
        rows = await c.rows("S1")
        assert [(ln["sku"], ln["qty"]) for ln in rows[oid]["lines"]] == [("B", 1)]
        assert orders.holds(db, "S1") == {"B": 1}
        assert [(ln["sku"], ln["qty"]) for ln in (await c.rows("S2"))[oid]["lines"]] == [("A", 2)]
        assert _blocked(db, "S1") == {"A": "hold_at_risk"}
        # the store may still accept what it was left with
        res = await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "applied"

        # an order that was nothing but the eaten SKU: the store is out of it
        only = (await c.order([("B", 2)]))["order_id"]
        assert live(c.view(only)) == [("S1", 1, "assigned")]
        res = await c.send("S1", p.ORDER_HOLD_AT_RISK, _risk(only, 1, "B", 1))
        assert res.status == "applied"
        v = c.view(only)
        assert live(v) == [("S2", 2, "assigned")]
        assert next(a for a in v["assignments"] if a["store_id"] == "S1")["state"] == "revoked"
        assert (await c.rows("S1"))[only]["assignment"] == "revoked"
        assert orders.holds(db, "S1") == {"B": 1}  # the first order's B only
        assert _quarantined(db) == 0


async def test_hold_at_risk_after_the_order_was_completed_is_superseded(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        oid = (await c.order([("A", 1)], pickup="S1"))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        picked = {"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1}
        await c.send("S1", p.ORDER_PICKED, {"order_id": oid, "epoch": 1, "lines": [picked]})
        res = await c.send("S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 1)]))
        assert res.status == "applied" and c.view(oid)["state"] == "completed"
        res = await c.send("S1", p.ORDER_HOLD_AT_RISK, _risk(oid, 1, "A", 1))
        assert res.status == "superseded" and "nothing is left to re-source" in (res.reason or "")
        assert _quarantined(db) == 0
        assert c.view(oid)["state"] == "completed" and live(c.view(oid)) == []


async def test_a_second_till_of_the_store_is_superseded_not_quarantined(db: Database) -> None:
    """Both tills of S1 receive the order and may answer it (offline, say): the first answer
    HQ applies decides. The other till's steps are answered ``superseded`` with the till that
    has the order; a handover it made is a fact: its stock moves and it completes the order
    (or, after the other till's handover, opens a double-fulfilment incident)."""
    async with chain(db) as c:
        c.tills["S1/till-2"] = add_till(db, "S1", "till-2")
        await c.stock("S1", [("A", 5), ("B", 5)])
        oid = (await c.order([("A", 2)], pickup="S1"))["order_id"]
        res = await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "applied"
        accepted = next(t for t in c.view(oid)["timeline"] if t["kind"] == "accepted")
        assert accepted["detail"]["till"] == "till-1"

        second = {"order_id": oid, "epoch": 1}
        res = await c.send("S1/till-2", p.ORDER_ACCEPTED, second)
        assert res.status == "superseded"
        assert p.reason_code(res.reason) == p.SUPERSEDED_OTHER_TILL
        assert "accepted at till-1" in (res.reason or "")
        # a reject from the other till does not end the accepting till's work
        res = await c.send("S1/till-2", p.ORDER_REJECTED, {**second, "reason": "out_of_stock"})
        assert res.status == "superseded" and "accepted at till-1" in (res.reason or "")
        risk = _risk(oid, 1, "A", 1)
        res = await c.send("S1/till-2", p.ORDER_HOLD_AT_RISK, risk)
        assert res.status == "superseded"  # that till's ledger never held the order
        assert live(c.view(oid)) == [("S1", 1, "accepted")]
        assert orders.holds(db, "S1") == {"A": 2}
        assert _quarantined(db) == 0
        # the same till answering twice is still a bad event
        res = await c.send("S1", p.ORDER_ACCEPTED, second)
        assert res.status == "rejected" and p.reason_code(res.reason) == "illegal_transition"
        assert _quarantined(db) == 1

        # till-2 had picked its own goods and the customer took them there: kept, completes
        res = await c.send("S1/till-2", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2)]))
        assert res.status == "superseded" and "is kept" in (res.reason or "")
        assert checks.on_hand(db, "S1") == {"A": 3, "B": 5}
        v = c.view(oid)
        assert v["state"] == "completed" and live(v) == []
        assert orders.holds(db, "S1") == {}
        assert (await c.rows("S1"))[oid]["assignment"] == "completed"
        assert orders.incidents(db) == []
        # till-1, offline, handed the order over as well: the goods left twice
        res = await c.send("S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2)]))
        assert res.status == "superseded" and "handed over at till-2" in (res.reason or "")
        assert checks.on_hand(db, "S1") == {"A": 1, "B": 5}
        (incident,) = orders.incidents(db)
        assert incident["kind"] == "double_fulfilment" and incident["order_id"] == oid
        assert _quarantined(db) == 1
