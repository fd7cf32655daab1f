"""Online orders end to end with holds from the moment an order arrives and stores with several
tills: a real HQ (in-process over a SQLite file) and stores whose tills are real SQLite files run
by the production sync engine.

An order holds its stock at the store as soon as it arrives (HQ counts it from the assignment),
so a till sale before anyone answers warns and HQ re-sources. Every till of a store receives the
store's orders; the first answer HQ applies decides which till has the order, the other tills'
steps come back ``superseded`` (never quarantined) and those tills hold nothing for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hq import orders as hq_orders
from hq.db import quarantine
from pos.domain.cart import Cart, Payment
from pos.services.sale import SaleService
from pos.store import orders as store_orders
from sync import protocol as p
from tests.sync.orders_support import Chain, Shop, add_till, make_chain, pickup_code
from tests.sync.support import HQ, ean_of, make_hq


@pytest.fixture
def hq(tmp_path: Path) -> HQ:
    return make_hq(tmp_path)


@pytest.fixture
async def chain(hq: HQ, tmp_path: Path) -> AsyncIterator[Chain]:
    c = await make_chain(hq, tmp_path)
    yield c
    await c.aclose()


def sell(shop: Shop, sku: str, qty: int) -> tuple[tuple[str, int], ...]:
    """A walk-in sale at this till; returns (order, shortfall) of the held stock it took."""
    sales = SaleService(shop.till.store, clock=shop.till.clock)
    product = sales.lookup(ean_of(sku))
    assert product is not None
    cart = Cart().add(product, qty)
    receipt = sales.complete(cart, [Payment.cash(cart.total)])
    return tuple((c.order_id, c.shortfall) for c in receipt.held_conflicts)


def held(shop: Shop, sku: str) -> int:
    return store_orders.held(shop.till.store, sku)


def quarantined(chain: Chain) -> int:
    with chain.hq.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(quarantine)).scalar_one())


# ---------------------------------------------------------------------------------------------
# holds from arrival


async def test_a_sale_before_the_store_answers_warns_and_hq_sends_the_line_elsewhere(
    chain: Chain,
) -> None:
    s1, s2 = chain.s1, chain.s2
    s1.receive([("A", 3), ("B", 5)])
    s2.receive([("A", 5), ("B", 5)])
    await chain.sync()
    oid = (await chain.order([("A", 2), ("B", 1)]))["order_id"]
    await chain.sync("S1")
    assert s1.orders.get(oid).stage == "new"
    # held at the till as HQ holds it, before anyone answered
    assert held(s1, "A") == 2 == hq_orders.holds(chain.hq.db, "S1")["A"]
    sales = SaleService(s1.till.store, clock=s1.till.clock)
    assert sales.available("A") == 1
    assert sell(s1, "A", 2) == ((oid, 1),)  # one free unit, one held: the cashier is warned
    assert s1.outbox_states(p.ORDER_HOLD_AT_RISK) == ["pending"]
    await chain.sync()
    assert s1.outbox_states(p.ORDER_HOLD_AT_RISK) == ["acked"]
    assert "hold_at_risk" in chain.kinds(oid)
    # the A line goes whole to S2; S1 keeps the B it has, still to answer
    assert sorted(chain.live(oid)) == [("S1", 1, "assigned"), ("S2", 2, "assigned")]
    mine = s1.orders.get(oid)
    assert mine.stage == "new" and [(ln.sku, ln.qty) for ln in mine.lines if ln.qty] == [("B", 1)]
    assert (held(s1, "A"), held(s1, "B")) == (0, 1)
    assert hq_orders.holds(chain.hq.db, "S1") == {"B": 1}
    theirs = s2.orders.get(oid)
    assert theirs.epoch == 2 and [(ln.sku, ln.qty) for ln in theirs.lines] == [("A", 2)]
    assert held(s2, "A") == 2 == hq_orders.holds(chain.hq.db, "S2")["A"]
    s1.orders.accept(oid)
    await chain.sync("S1")
    assert sorted(chain.live(oid)) == [("S1", 1, "accepted"), ("S2", 2, "assigned")]
    assert chain.hq.on_hand("S1") == {"A": 1, "B": 5}


async def test_an_offline_sale_then_accept_the_store_is_out_and_its_holds_go(
    chain: Chain,
) -> None:
    s1 = chain.s1
    s1.receive([("A", 3)])
    chain.s2.receive([("A", 5)])
    await chain.sync()
    oid = (await chain.order([("A", 2)]))["order_id"]
    await chain.sync("S1")
    s1.offline()
    assert sell(s1, "A", 2) == ((oid, 1),)
    s1.orders.accept(oid)  # the staff accept what is left, offline
    assert held(s1, "A") == 1
    s1.online()
    await chain.sync()
    # the sale's hold_at_risk reached HQ before the accept: S1 is out of the order
    assert chain.live(oid) == [("S2", 2, "assigned")]
    assert s1.outbox_states(p.ORDER_ACCEPTED) == ["superseded"]
    assert s1.orders.get(oid).stage == "revoked" and held(s1, "A") == 0
    assert held(chain.s2, "A") == 2
    assert quarantined(chain) == 0


async def test_no_answer_by_accept_by_releases_the_arrival_holds(chain: Chain) -> None:
    chain.s1.receive([("A", 5)])
    chain.s2.receive([("A", 5)])
    await chain.sync()
    oid = (await chain.order([("A", 1)]))["order_id"]
    await chain.sync()
    assert held(chain.s1, "A") == 1 and held(chain.s2, "A") == 0
    chain.advance(minutes=11)
    await chain.sync()
    assert chain.tick().expired == 1
    await chain.sync()
    assert chain.s1.orders.get(oid).stage == "revoked"
    assert held(chain.s1, "A") == 0 and held(chain.s2, "A") == 1
    assert hq_orders.holds(chain.hq.db, "S1") == {}


# ---------------------------------------------------------------------------------------------
# several tills per store


async def test_two_tills_accept_offline_the_second_is_superseded_and_lets_go(
    chain: Chain, tmp_path: Path
) -> None:
    t1 = chain.s1
    t2 = await add_till(chain, tmp_path, "S1", "till-2")
    t1.receive([("A", 5)])
    chain.s2.receive([("A", 5)])
    await chain.sync()
    oid = (await chain.order([("A", 2)]))["order_id"]
    await chain.sync()
    assert held(t1, "A") == 2 and held(t2, "A") == 2  # nobody answered: every till holds
    t1.offline()
    t2.offline()
    t1.orders.accept(oid)
    t2.orders.accept(oid)
    t2.scan(oid, "A")  # till-2's staff already took one off the shelf
    t1.online()
    await t1.sync()
    assert chain.live(oid) == [("S1", 1, "accepted")]
    t2.online()
    await t2.sync()  # pulls HQ's "accepted" (whose?), then its accept comes back superseded
    assert t2.outbox_states(p.ORDER_ACCEPTED) == ["superseded"]
    mine = t2.orders.get(oid)
    assert mine.stage == "elsewhere" and held(t2, "A") == 0
    (step,) = t2.orders.inbox().troubled
    assert (step.type, step.state) == (p.ORDER_ACCEPTED, "superseded")
    assert "accepted at till-1" in (step.reason or "")
    (task,) = store_orders.open_tasks(t2.till.store)  # its picked unit goes back
    assert task.kind == "return_to_shelf" and task.detail["lines"][0]["qty"] == 1
    assert quarantined(chain) == 0
    assert chain.live(oid) == [("S1", 1, "accepted")]
    assert held(t1, "A") == 2 == hq_orders.holds(chain.hq.db, "S1")["A"]
    superseded = [t for t in chain.view(oid)["timeline"] if t["kind"] == "superseded"]
    assert superseded[0]["detail"] == {
        "event": p.ORDER_ACCEPTED,
        "assignment": "accepted",
        "other_till": "till-1",
        "till": "till-2",
    }
    # till-1 carries on; till-2 follows the order to its end without a step of its own
    t1.scan(oid, "A")
    t1.scan(oid, "A")
    t1.orders.confirm_pick(oid)
    t1.orders.ship(oid, "SF1")
    await chain.sync()
    assert chain.view(oid)["state"] == "completed"
    assert t2.orders.get(oid).stage == "completed"
    t2.orders.task_done(task.id)
    await chain.sync()
    assert t2.outbox_states(p.ORDER_RETURNED_TO_SHELF) == []  # nothing left its shelf
    assert chain.hq.on_hand("S1") == {"A": 3}
    assert quarantined(chain) == 0 and hq_orders.incidents(chain.hq.db) == []


async def test_a_sale_at_the_other_till_after_the_accept_does_not_move_the_order(
    chain: Chain, tmp_path: Path
) -> None:
    """till-2 sold while it still saw the order new (offline): its own ledger said the sale
    ate the order's stock, but the order is till-1's now and till-1's ledger holds it."""
    t1 = chain.s1
    t2 = await add_till(chain, tmp_path, "S1", "till-2")
    t1.receive([("A", 5)])
    t2.receive([("A", 2)])
    chain.s2.receive([("A", 5)])
    await chain.sync()
    oid = (await chain.order([("A", 2)]))["order_id"]
    await chain.sync()
    t2.offline()
    t1.orders.accept(oid)
    await t1.sync()
    assert sell(t2, "A", 1) == ((oid, 1),)  # the cashier at till-2 was warned
    t2.online()
    await chain.sync()
    assert t2.outbox_states(p.ORDER_HOLD_AT_RISK) == ["superseded"]
    assert t2.orders.get(oid).stage == "elsewhere" and held(t2, "A") == 0
    assert chain.live(oid) == [("S1", 1, "accepted")]  # nothing was re-sourced
    assert [ln.qty for ln in t1.orders.get(oid).lines] == [2] and held(t1, "A") == 2
    assert quarantined(chain) == 0
    assert chain.hq.on_hand("S1") == {"A": 6}


async def test_a_handover_at_the_other_till_is_kept_and_the_first_puts_its_picks_back(
    chain: Chain, tmp_path: Path
) -> None:
    t1 = chain.s1
    t2 = await add_till(chain, tmp_path, "S1", "till-2")
    t1.receive([("A", 5)])
    await chain.sync()
    placed = await chain.order([("A", 2)], pickup="S1")
    oid, code = placed["order_id"], pickup_code(placed)
    await chain.sync()
    t1.offline()
    t2.offline()
    t1.orders.accept(oid)
    t2.orders.accept(oid)
    t1.online()
    await t1.sync()  # till-1's answer reaches HQ first
    t1.scan(oid, "A")
    t1.scan(oid, "A")
    t1.orders.confirm_pick(oid)
    await t1.sync()
    # till-2, still offline, picked its own two and the customer came to it
    t2.scan(oid, "A")
    t2.scan(oid, "A")
    t2.orders.confirm_pick(oid)
    t2.orders.ready(oid)
    t2.orders.hand_over(oid, code)
    t2.online()
    await chain.sync()
    assert t2.outbox_states(p.ORDER_HANDED_OVER) == ["superseded"]
    assert t2.orders.get(oid).stage == "handed_over"  # the customer has the goods: kept
    v = chain.view(oid)
    assert v["state"] == "completed" and chain.live(oid) == []
    assert chain.hq.on_hand("S1") == {"A": 3}  # the handover's stock moved
    mine = t1.orders.get(oid)
    assert mine.stage == "completed" and held(t1, "A") == 0
    (task,) = store_orders.open_tasks(t1.till.store)
    assert task.kind == "return_to_shelf" and task.detail["lines"][0]["qty"] == 2
    assert quarantined(chain) == 0 and hq_orders.incidents(chain.hq.db) == []
