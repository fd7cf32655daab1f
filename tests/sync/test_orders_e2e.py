"""Online orders end to end: a real HQ (its app over a SQLite file, in-process) and two stores,
each a real SQLite file run by the production sync engine and the store's order service. Orders
come in through HQ's platform API; the stores see them by pulling, answer, pick by scan, hand
over or ship, and go offline while HQ reassigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hq import orders as hq_orders
from pos.domain.cart import Cart, Payment
from pos.domain.orders import PickupCodeError, WrongItemError
from pos.services.sale import SaleService
from pos.store import orders as store_orders
from sync import protocol as p
from tests.sync.orders_support import Chain, make_chain, pickup_code
from tests.sync.support import HQ, ean_of, make_hq


@pytest.fixture
def hq(tmp_path: Path) -> HQ:
    return make_hq(tmp_path)


@pytest.fixture
async def chain(hq: HQ, tmp_path: Path) -> AsyncIterator[Chain]:
    c = await make_chain(hq, tmp_path)
    yield c
    await c.aclose()


async def stocked(chain: Chain, s1: list[tuple[str, int]], s2: list[tuple[str, int]]) -> None:
    chain.s1.receive(s1)
    chain.s2.receive(s2)
    await chain.sync()


def hq_on_hand(chain: Chain, store_id: str) -> dict[str, int]:
    return chain.hq.on_hand(store_id)


async def test_dispatch_picks_the_nearer_store_with_stock_and_it_shows_in_its_inbox(
    chain: Chain,
) -> None:
    await stocked(chain, [("A", 5)], [("A", 5), ("B", 5)])
    first = await chain.order([("A", 2)])
    second = await chain.order([("B", 1)])  # only S2 has B
    assert chain.live(first["order_id"]) == [("S1", 1, "assigned")]
    assert chain.live(second["order_id"]) == [("S2", 1, "assigned")]
    await chain.sync()
    inbox = chain.s1.orders.inbox()
    assert [o.order_id for o in inbox.orders] == [first["order_id"]] and inbox.new == 1
    card = chain.s1.orders.card(first["order_id"])
    assert [(ls.line.sku, ls.line.qty, ls.on_hand, ls.available) for ls in card.lines] == [
        ("A", 2, 5, 3)  # held from the moment it arrived, as HQ holds it
    ]
    assert (
        store_orders.held(chain.s1.till.store, "A") == 2 == hq_orders.holds(chain.hq.db, "S1")["A"]
    )
    assert [o.order_id for o in chain.s2.orders.inbox().orders] == [second["order_id"]]
    # accepting holds the stock at the store as HQ holds it
    chain.s1.orders.accept(first["order_id"])
    await chain.sync("S1")
    assert chain.live(first["order_id"]) == [("S1", 1, "accepted")]
    assert (
        store_orders.held(chain.s1.till.store, "A") == 2 == hq_orders.holds(chain.hq.db, "S1")["A"]
    )
    assert SaleService(chain.s1.till.store).available("A") == 3


async def test_reject_redispatches_to_the_other_store(chain: Chain) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 1)]))["order_id"]
    await chain.sync("S1")
    chain.s1.orders.reject(oid, "out_of_stock")
    await chain.sync()
    assert chain.live(oid) == [("S2", 2, "assigned")]
    assert chain.s1.orders.get(oid).stage == "rejected"
    assert chain.s1.orders.get(oid).assignment == "revoked"
    assert store_orders.held(chain.s1.till.store, "A") == 0
    mine = chain.s2.orders.get(oid)
    assert (mine.epoch, mine.stage) == (2, "new")
    chain.s2.orders.accept(oid)
    await chain.sync("S2")
    assert chain.live(oid) == [("S2", 2, "accepted")]


async def test_no_answer_by_accept_by_redispatches(chain: Chain) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 1)]))["order_id"]
    await chain.sync()
    assert chain.s1.orders.get(oid).stage == "new"
    chain.advance(minutes=11)
    await chain.sync()  # both stores stay fresh at HQ
    assert chain.tick().expired == 1
    await chain.sync()
    assert chain.live(oid) == [("S2", 2, "assigned")]
    assert chain.s1.orders.get(oid).stage == "revoked"
    assert chain.s1.orders.new_count() == 0  # no longer waits for an answer here
    assert chain.s2.orders.get(oid).stage == "new" and chain.s2.orders.new_count() == 1
    assert "expired" in chain.kinds(oid)


async def test_short_pick_is_partial_and_hq_resources_the_rest(chain: Chain) -> None:
    await stocked(chain, [("A", 5), ("B", 2)], [("B", 5)])
    oid = (await chain.order([("A", 1), ("B", 2)]))["order_id"]
    await chain.sync()
    assert chain.live(oid) == [("S1", 1, "assigned")]
    s1 = chain.s1
    s1.orders.accept(oid)
    with pytest.raises(WrongItemError, match="WRONG ITEM"):
        s1.scan(oid, "C")
    s1.scan(oid, "A")
    s1.scan(oid, "B")
    s1.orders.confirm_pick(oid, {"L2": "only one on the shelf"})
    await chain.sync("S1")
    assert sorted(chain.live(oid)) == [("S1", 1, "picked"), ("S2", 2, "assigned")]
    assert "short_picked" in chain.kinds(oid)
    v = chain.view(oid)
    s2_part = next(a for a in v["assignments"] if a["store_id"] == "S2")
    assert [(ln["sku"], ln["qty"]) for ln in s2_part["lines"]] == [("B", 1)]
    await chain.sync()
    assert [(ln.sku, ln.qty) for ln in chain.s2.orders.get(oid).lines] == [("B", 1)]
    # S1's row shrank to what it picked; its holds agree with HQ's
    assert {ln.sku: ln.qty for ln in s1.orders.get(oid).lines} == {"A": 1, "B": 1}
    assert hq_orders.holds(chain.hq.db, "S1") == {"A": 1, "B": 1}
    assert store_orders.held(s1.till.store, "B") == 1


async def test_handover_by_pickup_code_offline_then_hq_hears(chain: Chain) -> None:
    await stocked(chain, [("A", 5), ("B", 5)], [])
    placed = await chain.order([("A", 2), ("B", 1)], pickup="S1")
    oid, code = placed["order_id"], pickup_code(placed)
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    for sku in ("A", "A", "B"):
        s1.scan(oid, sku)
    s1.orders.confirm_pick(oid)
    s1.orders.ready(oid)
    await chain.sync("S1")
    assert chain.live(oid) == [("S1", 1, "ready")]

    s1.offline()
    with pytest.raises(PickupCodeError, match="Wrong pickup code"):
        s1.orders.hand_over(oid, "000000" if code != "000000" else "111111")
    found = s1.orders.find_pickup(code)  # the short code alone, no network
    assert found.order_id == oid
    s1.orders.hand_over(oid, code)
    with pytest.raises(PickupCodeError, match="already used"):
        s1.orders.find_pickup(code, oid)
    assert s1.till.on_hand() == {"A": 3, "B": 4}
    await s1.sync_offline()
    assert hq_on_hand(chain, "S1") == {"A": 5, "B": 5}

    s1.online()
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_HANDED_OVER) == ["acked"]
    v = chain.view(oid)
    assert v["state"] == "completed" and "handed_over" in chain.kinds(oid)
    assert hq_on_hand(chain, "S1") == {"A": 3, "B": 4} == s1.till.ledger_sums()
    assert hq_orders.holds(chain.hq.db, "S1") == {}
    assert s1.orders.get(oid).assignment == "completed"


async def test_delivery_order_ships_with_the_tracking_label(chain: Chain) -> None:
    await stocked(chain, [("C", 3)], [])
    oid = (await chain.order([("C", 2)]))["order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    s1.scan(oid, "C")
    s1.scan(oid, "C")
    s1.orders.confirm_pick(oid)
    s1.orders.ship(oid, "SF1234567890")
    await chain.sync("S1")
    v = chain.view(oid)
    assert v["state"] == "completed"
    shipped = next(t for t in v["timeline"] if t["kind"] == "shipped")
    assert shipped["detail"]["tracking"] == "SF1234567890"
    assert hq_on_hand(chain, "S1") == {"C": 1}


async def test_till_sale_eating_held_stock_makes_hq_resource(chain: Chain) -> None:
    await stocked(chain, [("A", 3)], [("A", 5)])
    oid = (await chain.order([("A", 2)]))["order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    await chain.sync("S1")
    sales = SaleService(s1.till.store, clock=s1.till.clock)
    product = sales.lookup(ean_of("A"))
    assert product is not None and product.available == 1
    cart = Cart().add(product, 2)  # one free unit, one held
    receipt = sales.complete(cart, [Payment.cash(cart.total)])
    assert [(c.order_id, c.shortfall) for c in receipt.held_conflicts] == [(oid, 1)]
    await chain.sync()
    assert sorted(chain.live(oid)) == [("S1", 1, "accepted"), ("S2", 2, "assigned")]
    assert "hold_at_risk" in chain.kinds(oid)
    assert [ln.qty for ln in s1.orders.get(oid).lines] == [1]
    assert store_orders.held(s1.till.store, "A") == 1 == hq_orders.holds(chain.hq.db, "S1")["A"]
    assert [(ln.sku, ln.qty) for ln in chain.s2.orders.get(oid).lines] == [("A", 1)]
    assert hq_on_hand(chain, "S1") == {"A": 1}


async def test_offline_store_revoked_before_pick_voids_its_holds(chain: Chain) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 1)]))["order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.offline()
    s1.orders.accept(oid)  # offline: queued under epoch 1
    chain.advance(minutes=11)
    await chain.sync("S2")
    assert chain.tick().expired == 1  # HQ never heard the accept
    s1.online()
    await chain.sync("S1")  # pull first: the order is gone, then the accept goes out
    order = s1.orders.get(oid)
    assert (order.stage, order.assignment) == ("revoked", "revoked")
    assert store_orders.held(s1.till.store, "A") == 0
    assert store_orders.open_tasks(s1.till.store) == []
    assert s1.outbox_states(p.ORDER_ACCEPTED) == ["superseded"]
    shown = s1.orders.inbox().troubled
    assert [(st.order_id, st.type, st.state) for st in shown] == [
        (oid, p.ORDER_ACCEPTED, "superseded")
    ]
    assert "superseded" in (shown[0].reason or "")
    assert chain.live(oid) == [("S2", 2, "assigned")]


async def test_offline_store_revoked_after_pick_gets_a_return_to_shelf_task(
    chain: Chain,
) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 2)]))["order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    await chain.sync("S1")
    s1.offline()
    s1.scan(oid, "A")
    s1.scan(oid, "A")
    s1.orders.confirm_pick(oid)  # queued
    chain.advance(hours=3)  # S1 silent beyond the force limit
    await chain.sync("S2")
    assert hq_orders.reassign(chain.hq.db, oid, now=chain.hq.clock()) == [
        "S1: forced (unreachable)"
    ]
    s1.online()
    await chain.sync("S1")
    assert s1.orders.get(oid).stage == "revoked"
    (task,) = store_orders.open_tasks(s1.till.store)
    assert task.kind == "return_to_shelf" and task.detail["lines"] == [
        {"sku": "A", "name": "商品 A", "qty": 2}
    ]
    assert s1.outbox_states(p.ORDER_PICKED) == ["superseded"]
    assert store_orders.held(s1.till.store, "A") == 0
    s1.orders.task_done(task.id)
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_RETURNED_TO_SHELF) == ["acked"]
    assert "returned_to_shelf" in chain.kinds(oid)
    assert chain.live(oid) == [("S2", 2, "assigned")]
    assert hq_on_hand(chain, "S1") == {"A": 5}  # nothing left the store


async def test_offline_handover_under_a_stale_epoch_is_kept(chain: Chain) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    placed = await chain.order([("A", 1)], pickup="S1")
    oid, code = placed["order_id"], pickup_code(placed)
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    s1.scan(oid, "A")
    s1.orders.confirm_pick(oid)
    s1.orders.ready(oid)
    await chain.sync("S1")
    s1.offline()
    chain.advance(hours=3)
    await chain.sync("S2")
    assert hq_orders.reassign(chain.hq.db, oid, now=chain.hq.clock()) == [
        "S1: forced (unreachable)"
    ]
    assert chain.view(oid)["state"] == "backorder"  # a pickup stays at its store
    s1.orders.hand_over(oid, code)  # the customer came; the till was offline
    s1.online()
    await chain.sync("S1")
    order = s1.orders.get(oid)
    assert (order.stage, order.assignment) == ("handed_over", "revoked")
    assert store_orders.open_tasks(s1.till.store) == []  # the customer has the goods
    assert s1.outbox_states(p.ORDER_HANDED_OVER) == ["superseded"]
    assert hq_on_hand(chain, "S1") == {"A": 4} == s1.till.ledger_sums()
    v = chain.view(oid)
    assert v["state"] == "completed"  # HQ keeps the fact
    stale = [t for t in v["timeline"] if t["kind"] == "handed_over"]
    assert stale and stale[0]["detail"]["stale"] is True
    assert hq_orders.incidents(chain.hq.db) == []
    assert [(st.order_id, st.type, st.state) for st in s1.orders.inbox().troubled] == [
        (oid, p.ORDER_HANDED_OVER, "superseded")
    ]


async def test_offline_shipment_under_a_stale_epoch_cancels_the_newer_assignment(
    chain: Chain,
) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 1)]))["order_id"]
    s1, s2 = chain.s1, chain.s2
    await chain.sync("S1")
    s1.orders.accept(oid)
    s1.scan(oid, "A")
    s1.orders.confirm_pick(oid)
    await chain.sync("S1")
    s1.offline()
    chain.advance(hours=3)
    await chain.sync("S2")
    assert hq_orders.reassign(chain.hq.db, oid, now=chain.hq.clock()) == [
        "S1: forced (unreachable)"
    ]
    await chain.sync("S2")
    s2.orders.accept(oid)  # S2 holds it under epoch 2 ...
    await chain.sync("S2")
    assert store_orders.held(s2.till.store, "A") == 1
    s1.orders.ship(oid, "SF-OLD")  # ... while S1, offline, gave it to the courier
    s1.online()
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_SHIPPED) == ["superseded"]
    assert hq_on_hand(chain, "S1") == {"A": 4}
    v = chain.view(oid)
    assert v["state"] == "completed" and chain.live(oid) == []
    assert next(a for a in v["assignments"] if a["store_id"] == "S2")["state"] == "voided"
    await chain.sync("S2")
    assert s2.orders.get(oid).stage == "cancelled"
    assert store_orders.held(s2.till.store, "A") == 0
    assert hq_orders.holds(chain.hq.db, "S2") == {}
    assert hq_orders.incidents(chain.hq.db) == []


async def test_stale_delivery_handed_over_after_the_new_store_shipped_opens_an_incident(
    chain: Chain,
) -> None:
    await stocked(chain, [("A", 5)], [("A", 5)])
    oid = (await chain.order([("A", 1)]))["order_id"]
    s1, s2 = chain.s1, chain.s2
    await chain.sync("S1")
    s1.orders.accept(oid)
    s1.scan(oid, "A")
    s1.orders.confirm_pick(oid)
    await chain.sync("S1")
    s1.offline()
    chain.advance(hours=3)
    await chain.sync("S2")
    assert hq_orders.reassign(chain.hq.db, oid, now=chain.hq.clock()) == [
        "S1: forced (unreachable)"
    ]
    await chain.sync("S2")
    s2.orders.accept(oid)
    s2.scan(oid, "A")
    s2.orders.confirm_pick(oid)
    s2.orders.ship(oid, "SF-NEW")
    await chain.sync("S2")
    s1.orders.ship(oid, "SF-OLD")  # offline, under epoch 1
    s1.online()
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_SHIPPED) == ["superseded"]
    (incident,) = hq_orders.incidents(chain.hq.db)
    assert incident["kind"] == "double_fulfilment" and incident["stores"] == ["S1", "S2"]
    assert hq_on_hand(chain, "S1") == {"A": 4} and hq_on_hand(chain, "S2") == {"A": 4}
    shown = s1.orders.inbox().troubled
    assert [(st.order_id, st.type) for st in shown] == [(oid, p.ORDER_SHIPPED)]


async def test_endless_aisle_request_becomes_an_order_at_the_store_with_stock(
    chain: Chain,
) -> None:
    await stocked(chain, [], [("C", 4)])
    s1 = chain.s1
    s1.offline()
    rid = s1.orders.request_delivery(
        [("C", 2)],
        name="韩梅梅",
        phone="13900000000",
        address="南京东路 1 号",
        lat="31.2350",
        lon="121.4800",
    )
    await s1.sync_offline()
    s1.online()
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_REQUESTED) == ["acked"]
    found = [o for o in hq_orders_list(chain) if o["platform_order_id"] == rid]
    assert len(found) == 1
    oid = found[0]["order_id"]
    v = chain.view(oid)
    assert v["origin_store"] == "S1" and chain.live(oid) == [("S2", 1, "assigned")]
    await chain.sync("S2")
    assert chain.s2.orders.get(oid).stage == "new"


def hq_orders_list(chain: Chain) -> list[dict[str, str]]:
    from sqlalchemy import select

    from hq.db import orders as orders_table

    return [
        {"order_id": r.order_id, "platform_order_id": r.platform_order_id}
        for r in chain.hq.rows(select(orders_table.c.order_id, orders_table.c.platform_order_id))
    ]


async def test_a_part_merged_into_a_new_epoch_replaces_the_stores_older_one(
    chain: Chain,
) -> None:
    await stocked(chain, [("A", 5), ("B", 1)], [("B", 5)])
    first = await chain.order([("B", 1)])  # takes S1's only B
    assert chain.live(first["order_id"]) == [("S1", 1, "assigned")]
    oid = (await chain.order([("A", 1), ("B", 1)]))["order_id"]
    assert sorted(chain.live(oid)) == [("S1", 1, "assigned"), ("S2", 1, "assigned")]
    await chain.sync()
    # the platform calls the first order off: S1's B is free again
    hq_orders.reassign(chain.hq.db, first["order_id"], now=chain.hq.clock(), cancel=True)
    chain.s2.orders.reject(oid, "damaged")
    await chain.sync()
    s1 = chain.s1.orders.get(oid)
    assert [(a, e) for a, e, _ in chain.live(oid)] == [("S1", s1.epoch)]
    assert s1.epoch > 1 and s1.stage == "new"
    assert sorted((ln.sku, ln.qty) for ln in s1.lines) == [("A", 1), ("B", 1)]
    assert store_orders.open_tasks(chain.s1.till.store) == []
    chain.s1.orders.accept(oid)
    await chain.sync("S1")
    assert chain.live(oid) == [("S1", s1.epoch, "accepted")]
    assert store_orders.held(chain.s1.till.store, "B") == 1
