"""Online orders at the store, over a real store file: HQ's rows applied as the sync engine
applies them, every step one transaction with its outbox event and epoch, holds that lower what
the till may sell, picking by scan, handover by pickup code, and HQ taking orders away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pos.domain.cart import Cart, Payment
from pos.domain.orders import (
    TRANSITIONS,
    OrderError,
    OrderStateError,
    PickupCodeError,
    WrongItemError,
    advance,
)
from pos.services.orders import OrderService
from pos.services.sale import SaleService
from pos.store import Store, stock
from pos.store import orders as store_orders
from sync import protocol as p
from tests.pos.conftest import NOW

WATER, COLA, NOODLE, CHIPS = "6921168509256", "036000291452", "6920152400012", "6924743915848"
CODE = "482913"


def order_row(
    order_id: str = "ORD-1",
    *,
    epoch: int = 1,
    assignment: str = "assigned",
    lines: list[tuple[str, str, int]] | None = None,
    delivery: str = "pickup",
    code: str | None = CODE,
) -> dict[str, Any]:
    lines = lines if lines is not None else [("L1", "SKU-WATER", 2), ("L2", "SKU-COLA", 1)]
    return p.OrderRow(
        order_id=order_id,
        platform="tmall",
        platform_order_id=f"TM-{order_id}",
        epoch=epoch,
        assignment=assignment,  # type: ignore[arg-type]
        accept_by=NOW + timedelta(minutes=10),
        delivery=delivery,  # type: ignore[arg-type]
        customer=p.OrderCustomer(name="李雷", phone="13800000000"),
        address=None
        if delivery == "pickup"
        else p.OrderAddress(text="人民大道 200 号", lat=31.23, lon=121.47),
        lines=[p.OrderRowLine(line_id=i, sku=s, name=f"item {s}", qty=q) for i, s, q in lines],
        pickup_code_hash=p.pickup_code_hash(code) if code and delivery == "pickup" else None,
    ).to_dict()


def pull(store: Store, row: dict[str, Any]) -> str:
    """One change of the orders stream, applied as the engine applies a page."""
    with store.transaction() as conn:
        return store_orders.apply_change(conn, "upsert", row["order_id"], row, NOW)


def events(store: Store, type_: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT type, payload, seq FROM outbox"
    rows = store.conn.execute(sql + " ORDER BY seq").fetchall()
    return [
        {"type": t, "seq": seq, **json.loads(payload)}
        for t, payload, seq in rows
        if type_ is None or t == type_
    ]


def counts(store: Store) -> dict[str, int]:
    return {
        t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("outbox", "holds", "stock_ledger", "order_tasks", "order_steps")
    }


@pytest.fixture
def orders(store: Store) -> OrderService:
    return OrderService(store, clock=lambda: NOW)


@pytest.fixture
def picked(store: Store, orders: OrderService) -> Iterator[OrderService]:
    """ORD-1 (2 water, 1 cola, pickup) accepted and fully picked by scanning."""
    pull(store, order_row())
    orders.accept("ORD-1")
    for code in (WATER, WATER, COLA):
        orders.pick_scan("ORD-1", code)
    orders.confirm_pick("ORD-1")
    yield orders


def test_a_new_order_is_counted_until_opened(store: Store, orders: OrderService) -> None:
    assert pull(store, order_row()) == "new"
    assert orders.new_count() == 1
    card = orders.card("ORD-1")
    assert [(ls.line.sku, ls.on_hand, ls.available) for ls in card.lines] == [
        ("SKU-WATER", 10, 8),  # held from the moment it arrived
        ("SKU-COLA", 10, 9),
    ]
    orders.mark_seen("ORD-1")
    assert orders.new_count() == 0 and orders.get("ORD-1").stage == "new"


def test_accept_holds_the_stock_and_tells_hq_under_its_epoch(
    store: Store, orders: OrderService, service: SaleService
) -> None:
    pull(store, order_row(epoch=3))
    orders.accept("ORD-1")
    assert [e for e in events(store) if e["type"] == p.ORDER_ACCEPTED] == [
        {"type": p.ORDER_ACCEPTED, "seq": 1, "order_id": "ORD-1", "epoch": 3}
    ]
    assert {(h.sku, h.qty, h.state, h.epoch) for h in store_orders.holds_of(store)} == {
        ("SKU-WATER", 2, "pending", 3),
        ("SKU-COLA", 1, "pending", 3),
    }
    # the sale screen sees less to sell, the shelf count is the same
    assert service.available("SKU-WATER") == 8
    product = service.lookup(WATER)
    assert product is not None and (product.on_hand, product.available) == (10, 8)
    assert orders.card("ORD-1").lines[0].available == 8
    with pytest.raises(OrderStateError, match="cannot be accepted"):
        orders.accept("ORD-1")
    assert len(events(store)) == 1


def test_reject_needs_a_reason_code_and_holds_nothing(store: Store, orders: OrderService) -> None:
    pull(store, order_row())
    before = counts(store)
    with pytest.raises(OrderError, match="Choose why"):
        orders.reject("ORD-1", "bored")
    assert counts(store) == before
    orders.reject("ORD-1", "damaged", note="box crushed")
    (event,) = events(store)
    assert event == {
        "type": p.ORDER_REJECTED,
        "seq": 1,
        "order_id": "ORD-1",
        "epoch": 1,
        "reason": "damaged",
        "note": "box crushed",
    }
    assert orders.get("ORD-1").stage == "rejected" and store_orders.held(store, "SKU-WATER") == 0
    # HQ's next row says revoked: nothing more to do, no task
    pull(store, order_row(assignment="revoked"))
    assert store_orders.open_tasks(store) == []


def test_picking_counts_each_scanned_unit_and_refuses_a_wrong_item(
    store: Store, orders: OrderService
) -> None:
    pull(store, order_row())
    with pytest.raises(OrderStateError, match="accept it first"):
        orders.pick_scan("ORD-1", WATER)
    orders.accept("ORD-1")
    assert [ln.sku for ln in orders.pick_list("ORD-1")] == ["SKU-COLA", "SKU-WATER"]
    first = orders.pick_scan("ORD-1", WATER)
    assert (first.line.picked, first.line.qty, first.done) == (1, 2, False)
    before = counts(store)
    with pytest.raises(WrongItemError, match=r"WRONG ITEM.*康师傅.*not on this order"):
        orders.pick_scan("ORD-1", NOODLE)
    with pytest.raises(WrongItemError, match="not in the catalogue"):
        orders.pick_scan("ORD-1", "0000000000017")
    orders.pick_scan("ORD-1", "6921168509256")
    with pytest.raises(WrongItemError, match=r"All 2 of .* already picked"):
        orders.pick_scan("ORD-1", WATER)
    assert counts(store) == before  # scans are progress only: no event, no hold change
    done = orders.pick_scan("ORD-1", "COLA-1")  # any of the item's barcodes
    assert done.done
    # progress survives a restart of the till: it is in the file
    assert [ln.picked for ln in orders.get("ORD-1").lines] == [2, 1]


def test_typed_quantities_only_with_the_setting(store: Store, orders: OrderService) -> None:
    pull(store, order_row())
    orders.accept("ORD-1")
    with pytest.raises(OrderError, match="must be scanned"):
        orders.set_picked("ORD-1", "L1", 2)
    store.set_config("orders.pick_qty_entry", "1")
    assert orders.set_picked("ORD-1", "L1", 2).picked == 2
    with pytest.raises(WrongItemError, match="between 0 and 1"):
        orders.set_picked("ORD-1", "L2", 5)


def test_short_pick_and_substitution_need_reasons_and_reach_hq(
    store: Store, orders: OrderService
) -> None:
    pull(store, order_row(lines=[("L1", "SKU-WATER", 3), ("L2", "SKU-COLA", 2)]))
    orders.accept("ORD-1")
    orders.pick_scan("ORD-1", WATER)
    with pytest.raises(OrderError, match="Say why"):
        orders.substitute("ORD-1", "L2", CHIPS, " ")
    with pytest.raises(WrongItemError, match="ordered item itself"):
        orders.substitute("ORD-1", "L2", COLA, "same")
    orders.substitute("ORD-1", "L2", CHIPS, "customer accepts chips")
    with pytest.raises(WrongItemError, match="WRONG ITEM"):
        orders.pick_scan("ORD-1", COLA)  # the line now wants the substitute
    orders.pick_scan("ORD-1", CHIPS)
    orders.pick_scan("ORD-1", CHIPS)
    with pytest.raises(OrderError, match=r"short: .*SKU-WATER.*1 of 3"):
        orders.confirm_pick("ORD-1")
    orders.confirm_pick("ORD-1", {"L1": "only one on the shelf"})
    (event,) = events(store, p.ORDER_PICKED)
    assert event["epoch"] == 1 and event["lines"] == [
        {
            "line_id": "L1",
            "sku": "SKU-WATER",
            "qty_ordered": 3,
            "qty_picked": 1,
            "reason": "only one on the shelf",
        },
        {
            "line_id": "L2",
            "sku": "SKU-COLA",
            "qty_ordered": 2,
            "qty_picked": 2,
            "substitute_sku": "SKU-CHIPS",
            "reason": "customer accepts chips",
        },
    ]
    p.OrderPickedV1.model_validate(event)
    # the holds now cover what was picked, of the item picked
    assert {(h.sku, h.qty, h.state) for h in store_orders.holds_of(store)} == {
        ("SKU-WATER", 1, "pending"),
        ("SKU-CHIPS", 2, "pending"),
    }
    # HQ shrinks its row to what was picked (re-sourcing the rest): nothing changes here
    pull(store, order_row(lines=[("L1", "SKU-WATER", 1), ("L2", "SKU-COLA", 2)]))
    assert [(ln.qty, ln.picked) for ln in orders.get("ORD-1").lines] == [(1, 1), (2, 2)]
    assert store_orders.held(store, "SKU-WATER") == 1


def test_handover_by_pickup_code_moves_stock_once(store: Store, picked: OrderService) -> None:
    orders = picked
    with pytest.raises(OrderStateError, match="not ready yet"):
        orders.find_pickup(CODE)
    orders.ready("ORD-1")
    before = counts(store)
    with pytest.raises(PickupCodeError, match="No order here has pickup code 111111"):
        orders.find_pickup("111111")
    with pytest.raises(PickupCodeError, match="Wrong pickup code for order ORD-1"):
        orders.hand_over("ORD-1", "111111")
    with pytest.raises(PickupCodeError, match="not a pickup code"):
        orders.find_pickup("abc")
    assert counts(store) == before
    assert orders.find_pickup("P" + CODE).order_id == "ORD-1"  # as typed at the counter
    assert orders.find_pickup(CODE, "ORD-1").order_id == "ORD-1"  # from the QR
    done = orders.hand_over("ORD-1", CODE)
    assert done.stage == "handed_over"
    assert stock.on_hand(store, "SKU-WATER") == 8 and stock.on_hand(store, "SKU-COLA") == 9
    (event,) = events(store, p.ORDER_HANDED_OVER)
    p.OrderHandedOverV1.model_validate(event)
    ledger = store.conn.execute(
        "SELECT movement_id, sku, delta, reason, order_id, epoch, ref_event_id FROM stock_ledger"
        " WHERE reason = 'order' ORDER BY sku DESC"
    ).fetchall()
    event_id = store.conn.execute(
        "SELECT event_id FROM outbox WHERE type = ?", (p.ORDER_HANDED_OVER,)
    ).fetchone()[0]
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in ledger] == [
        ("SKU-WATER", -2, "ORD-1", 1, event_id),
        ("SKU-COLA", -1, "ORD-1", 1, event_id),
    ]
    assert {m["movement_id"] for m in event["movements"]} == {r[0] for r in ledger}
    assert all(h.state == "posted" for h in store_orders.holds_of(store))
    assert store_orders.held(store, "SKU-WATER") == 0
    with pytest.raises(PickupCodeError, match="already used"):
        orders.find_pickup(CODE)
    with pytest.raises(PickupCodeError, match="already used"):
        orders.hand_over("ORD-1", CODE)
    assert len(events(store, p.ORDER_HANDED_OVER)) == 1


def test_delivery_orders_ship_with_the_tracking_label(store: Store, orders: OrderService) -> None:
    pull(store, order_row("ORD-D", delivery="delivery", lines=[("L1", "SKU-NOODLE", 2)]))
    orders.accept("ORD-D")
    orders.pick_scan("ORD-D", NOODLE)
    orders.pick_scan("ORD-D", NOODLE)
    orders.confirm_pick("ORD-D")
    with pytest.raises(OrderStateError, match="for delivery"):
        orders.ready("ORD-D")
    with pytest.raises(OrderError, match="tracking label"):
        orders.ship("ORD-D", "  ")
    orders.ship("ORD-D", "SF1234567890")
    (event,) = events(store, p.ORDER_SHIPPED)
    assert event["tracking"] == "SF1234567890" and event["movements"][0]["delta"] == -2
    assert stock.on_hand(store, "SKU-NOODLE") == 8
    assert orders.get("ORD-D").tracking == "SF1234567890"


def test_a_sale_that_eats_held_stock_warns_and_tells_hq_in_the_same_transaction(
    store: Store, orders: OrderService, service: SaleService
) -> None:
    pull(store, order_row("ORD-A", lines=[("L1", "SKU-WATER", 4)]))
    pull(store, order_row("ORD-B", lines=[("L1", "SKU-WATER", 3)], code="000111"))
    orders.accept("ORD-A")
    orders.accept("ORD-B")
    assert service.available("SKU-WATER") == 3
    water = service.lookup(WATER)
    assert water is not None
    cart = Cart().add(water, 5)  # 3 free, 2 of them held
    receipt = service.complete(cart, [Payment.cash(cart.total)])
    assert [(c.order_id, c.sku, c.shortfall) for c in receipt.held_conflicts] == [
        ("ORD-B", "SKU-WATER", 2)  # the newest hold loses first
    ]
    sale, risk = events(store)[-2:]
    assert sale["type"] == "sale.completed" and risk["seq"] == sale["seq"] + 1
    assert risk == {
        "type": p.ORDER_HOLD_AT_RISK,
        "seq": risk["seq"],
        "order_id": "ORD-B",
        "epoch": 1,
        "sku": "SKU-WATER",
        "shortfall": 2,
        "sale_id": receipt.sale_id,
    }
    p.OrderHoldAtRiskV1.model_validate(risk)
    # the hold and the line shrank at once: the same units are never reported twice
    assert store_orders.held(store, "SKU-WATER") == 5 and stock.on_hand(store, "SKU-WATER") == 5
    assert [ln.qty for ln in orders.get("ORD-B").lines] == [1]
    water = service.lookup(WATER)
    assert water is not None
    second = service.complete(Cart().add(water, 1), [Payment.cash(200)])
    assert [(c.order_id, c.shortfall) for c in second.held_conflicts] == [("ORD-B", 1)]
    assert len(events(store, p.ORDER_HOLD_AT_RISK)) == 2
    assert [s.type for s in orders.card("ORD-B").steps][-2:] == [p.ORDER_HOLD_AT_RISK] * 2


def test_picked_goods_are_not_charged_for_a_till_sale(
    store: Store, picked: OrderService, service: SaleService
) -> None:
    water = service.lookup(WATER)
    assert water is not None
    receipt = service.complete(Cart().add(water, 9), [Payment.cash(9 * 200)])
    assert receipt.held_conflicts == ()  # the two picked bottles are in a bin, not on the shelf
    assert events(store, p.ORDER_HOLD_AT_RISK) == []


def test_revoked_before_pick_voids_the_holds(store: Store, orders: OrderService) -> None:
    pull(store, order_row())
    orders.accept("ORD-1")
    assert pull(store, order_row(assignment="revoked")) == "revoked"
    order = orders.get("ORD-1")
    assert order.stage == "revoked"
    assert {h.state for h in store_orders.holds_of(store)} == {"voided"}
    assert store_orders.open_tasks(store) == []
    with pytest.raises(OrderStateError):
        orders.pick_scan("ORD-1", WATER)


def test_revoked_after_pick_leaves_a_return_to_shelf_task(
    store: Store, picked: OrderService
) -> None:
    orders = picked
    pull(store, order_row(assignment="revoked"))
    (task,) = store_orders.open_tasks(store)
    assert task.kind == "return_to_shelf" and task.epoch == 1
    assert {(ln["sku"], ln["qty"]) for ln in task.detail["lines"]} == {
        ("SKU-WATER", 2),
        ("SKU-COLA", 1),
    }
    assert store_orders.held(store, "SKU-WATER") == 0
    orders.task_done(task.id)
    assert events(store)[-1] == {
        "type": p.ORDER_RETURNED_TO_SHELF,
        "seq": events(store)[-1]["seq"],
        "order_id": "ORD-1",
        "epoch": 1,
    }
    assert store_orders.open_tasks(store) == []
    with pytest.raises(OrderError, match="already done"):
        orders.task_done(task.id)


def test_a_newer_epoch_replaces_the_old_assignment(store: Store, orders: OrderService) -> None:
    pull(store, order_row())
    orders.accept("ORD-1")
    orders.pick_scan("ORD-1", WATER)
    assert pull(store, order_row(epoch=4, lines=[("L2", "SKU-COLA", 1)])) == "reassigned"
    order = orders.get("ORD-1")
    assert (order.epoch, order.stage, [ln.sku for ln in order.lines]) == (4, "new", ["SKU-COLA"])
    assert store_orders.held(store, "SKU-WATER") == 0
    (task,) = store_orders.open_tasks(store)
    assert task.kind == "return_to_shelf" and task.epoch == 1
    assert pull(store, order_row(epoch=2)) == "stale"  # an older row changes nothing
    orders.accept("ORD-1")
    assert events(store)[-1]["epoch"] == 4


def test_cancel_request_is_answered_by_the_staff(store: Store, picked: OrderService) -> None:
    orders = picked
    with pytest.raises(OrderStateError, match="not asked"):
        orders.answer_cancel("ORD-1", agree=True)
    assert pull(store, order_row(assignment="cancel_requested")) == "cancel_requested"
    (task,) = store_orders.open_tasks(store)
    assert task.kind == "answer_cancel"
    with pytest.raises(OrderError, match="Say why"):
        orders.answer_cancel("ORD-1", agree=False)
    orders.answer_cancel("ORD-1", agree=False, reason="already packed")
    assert events(store)[-1]["type"] == p.ORDER_CANCEL_REFUSED
    assert store_orders.open_tasks(store) == [] and orders.get("ORD-1").stage == "picked"
    # answered once: not again before HQ asks again (HQ would refuse a second answer)
    with pytest.raises(OrderStateError, match="answered already"):
        orders.answer_cancel("ORD-1", agree=True)
    pull(store, order_row(assignment="cancel_requested"))  # the same row again (a snapshot)
    assert store_orders.open_tasks(store) == []

    pull(store, order_row(assignment="accepted"))  # HQ took the refusal ...
    pull(store, order_row(assignment="cancel_requested"))  # ... and asks again
    orders.answer_cancel("ORD-1", agree=True)
    assert events(store)[-1] == {
        "type": p.ORDER_CANCEL_ACCEPTED,
        "seq": events(store)[-1]["seq"],
        "order_id": "ORD-1",
        "epoch": 1,
    }
    assert orders.get("ORD-1").stage == "cancelled"
    assert store_orders.held(store, "SKU-WATER") == 0
    (back,) = store_orders.open_tasks(store)
    assert back.kind == "return_to_shelf"


def test_a_handover_done_offline_stands_when_hq_had_revoked(
    store: Store, picked: OrderService
) -> None:
    orders = picked
    orders.ready("ORD-1")
    orders.hand_over("ORD-1", CODE)
    pull(store, order_row(assignment="revoked"))  # learned only now
    order = orders.get("ORD-1")
    assert order.stage == "handed_over" and order.assignment == "revoked"
    assert store_orders.open_tasks(store) == []  # nothing to put back: the customer has it
    assert stock.on_hand(store, "SKU-WATER") == 8


def test_an_order_holds_its_stock_from_the_moment_it_arrives(
    store: Store, orders: OrderService, service: SaleService
) -> None:
    """HQ counts the order against the store from its assignment; so does the till, before
    anyone answers: the sale screen sees less to sell."""
    assert pull(store, order_row()) == "new"
    assert {(h.sku, h.qty, h.state, h.epoch) for h in store_orders.holds_of(store)} == {
        ("SKU-WATER", 2, "pending", 1),
        ("SKU-COLA", 1, "pending", 1),
    }
    assert service.available("SKU-WATER") == 8
    water = service.lookup(WATER)
    assert water is not None and (water.on_hand, water.available) == (10, 8)
    pull(store, order_row())  # the same row again (a snapshot) holds nothing more
    assert store_orders.held(store, "SKU-WATER") == 2
    orders.accept("ORD-1")  # accepting keeps the same holds
    assert [(h.line_id, h.qty, h.state) for h in store_orders.holds_of(store)] == [
        ("L1", 2, "pending"),
        ("L2", 1, "pending"),
    ]


@pytest.mark.parametrize(
    ("how", "stage"),
    [
        ("reject", "rejected"),
        ("timeout", "revoked"),  # HQ reassigned it after accept-by: the row says revoked
        ("reassigned", "new"),  # ... or the store's row moved to a new epoch
        ("cancel", "cancelled"),  # the platform called it off before anyone answered
        ("deleted", "revoked"),
    ],
)
def test_holds_of_a_new_order_go_when_it_is_rejected_reassigned_or_cancelled(
    store: Store, orders: OrderService, service: SaleService, how: str, stage: str
) -> None:
    pull(store, order_row())
    assert store_orders.held(store, "SKU-WATER") == 2
    if how == "reject":
        orders.reject("ORD-1", "out_of_stock")
    elif how == "timeout":
        pull(store, order_row(assignment="revoked"))
    elif how == "reassigned":
        pull(store, order_row(epoch=2, lines=[("L2", "SKU-COLA", 1)]))
    elif how == "cancel":
        pull(store, order_row(assignment="cancelled"))
    else:
        with store.transaction() as conn:
            store_orders.apply_change(conn, "delete", "ORD-1", None, NOW)
    assert orders.get("ORD-1").stage == stage
    assert store_orders.held(store, "SKU-WATER") == 0
    assert service.available("SKU-WATER") == 10
    # only the new epoch's assignment is held (the cola line, given again under epoch 2)
    assert store_orders.held(store, "SKU-COLA") == (1 if how == "reassigned" else 0)
    assert store_orders.open_tasks(store) == []  # nothing was picked: nothing to put back


def test_a_sale_eating_stock_held_for_a_new_order_warns_and_tells_hq(
    store: Store, orders: OrderService, service: SaleService
) -> None:
    pull(store, order_row(lines=[("L1", "SKU-WATER", 4)]))
    water = service.lookup(WATER)
    assert water is not None and water.available == 6
    receipt = service.complete(Cart().add(water, 8), [Payment.cash(1600)])  # 6 free, 2 held
    assert [(c.order_id, c.sku, c.shortfall) for c in receipt.held_conflicts] == [
        ("ORD-1", "SKU-WATER", 2)
    ]
    (risk,) = events(store, p.ORDER_HOLD_AT_RISK)
    assert (risk["order_id"], risk["epoch"], risk["shortfall"]) == ("ORD-1", 1, 2)
    assert store_orders.held(store, "SKU-WATER") == 2 == stock.on_hand(store, "SKU-WATER")
    order = orders.get("ORD-1")
    assert order.stage == "new" and [ln.qty for ln in order.lines] == [2]
    orders.accept("ORD-1")  # still the store's to answer; it holds what is left
    assert store_orders.held(store, "SKU-WATER") == 2


def test_another_till_accepted_so_this_till_holds_nothing(
    store: Store, orders: OrderService, service: SaleService
) -> None:
    """Each till has its own ledger: the order's pick and handover will be in the accepting
    till's, so its holds are not counted against this till's stock."""
    pull(store, order_row())
    assert store_orders.held(store, "SKU-WATER") == 2
    assert pull(store, order_row(assignment="accepted")) == "elsewhere"
    order = orders.get("ORD-1")
    assert (order.stage, orders.new_count()) == ("elsewhere", 0)
    assert store_orders.held(store, "SKU-WATER") == 0 and service.available("SKU-WATER") == 10
    with pytest.raises(OrderStateError, match="handled at another till"):
        orders.accept("ORD-1")
    water = service.lookup(WATER)
    assert water is not None
    receipt = service.complete(Cart().add(water, 10), [Payment.cash(2000)])
    assert receipt.held_conflicts == () and events(store, p.ORDER_HOLD_AT_RISK) == []
    pull(store, order_row(assignment="completed"))
    assert orders.get("ORD-1").stage == "completed"
    assert store_orders.open_tasks(store) == []


def test_a_till_that_first_hears_of_an_order_in_a_cancel_request_leaves_it_to_its_till(
    store: Store, orders: OrderService
) -> None:
    """The store's other till accepted and short-picked it, HQ then asked to cancel; this
    till pulls only now and gets HQ's current row (a snapshot after compaction, or both
    changes in one page): the question is for the till that has the order."""
    row = order_row(assignment="cancel_requested", lines=[("L1", "SKU-WATER", 1)])
    assert pull(store, row) == "elsewhere"
    assert orders.get("ORD-1").stage == "elsewhere"
    assert store_orders.held(store, "SKU-WATER") == 0
    assert store_orders.open_tasks(store) == []
    pull(store, row)  # the same row again asks nothing
    assert store_orders.open_tasks(store) == []
    pull(store, order_row(assignment="cancelled", lines=[("L1", "SKU-WATER", 1)]))
    assert orders.get("ORD-1").stage == "cancelled"


def test_a_till_that_answered_offline_and_lost_the_race_releases_its_holds(
    store: Store, orders: OrderService
) -> None:
    """Both tills accepted offline; HQ applied the other one's first. This till pulled HQ's
    "accepted" row before its own accept went out (it cannot tell whose it is), then HQ
    answered its accept ``superseded``: another till has the order."""
    pull(store, order_row())
    orders.accept("ORD-1")
    orders.pick_scan("ORD-1", WATER)
    assert pull(store, order_row(assignment="accepted")) == "updated"  # maybe its own
    assert orders.get("ORD-1").stage == "accepted"
    (accepted,) = events(store, p.ORDER_ACCEPTED)
    event_id = store.conn.execute(
        "SELECT event_id FROM outbox WHERE seq = ?", (accepted["seq"],)
    ).fetchone()[0]
    with store.transaction() as conn:  # a stale-epoch answer is not about another till
        stale = "superseded: epoch 1 of order ORD-1 at S1 is no longer current"
        assert store_orders.hq_answered(conn, [(event_id, stale)], NOW) == 0
    assert orders.get("ORD-1").stage == "accepted"
    with store.transaction() as conn:
        why = f"{p.SUPERSEDED_OTHER_TILL}: accepted at till-1 (order ORD-1, epoch 1)"
        assert store_orders.hq_answered(conn, [(event_id, why)], NOW) == 1
        assert store_orders.hq_answered(conn, [(event_id, why)], NOW) == 0  # answered again
    assert orders.get("ORD-1").stage == "elsewhere"
    assert store_orders.held(store, "SKU-WATER") == 0
    (task,) = store_orders.open_tasks(store)  # the bottle it picked goes back
    assert task.kind == "return_to_shelf" and task.detail["lines"][0]["qty"] == 1
    orders.task_done(task.id)
    assert events(store, p.ORDER_RETURNED_TO_SHELF) == []  # nothing HQ needs to hear


def test_an_order_completed_by_another_till_sends_picked_goods_back(
    store: Store, orders: OrderService
) -> None:
    pull(store, order_row())
    orders.accept("ORD-1")
    orders.pick_scan("ORD-1", WATER)
    assert pull(store, order_row(assignment="completed")) == "completed"
    assert orders.get("ORD-1").stage == "completed"
    assert store_orders.held(store, "SKU-WATER") == 0
    assert [t.kind for t in store_orders.open_tasks(store)] == ["return_to_shelf"]


def test_endless_aisle_request_is_queued_once(store: Store, orders: OrderService) -> None:
    with pytest.raises(OrderError, match="latitude and longitude"):
        orders.request_delivery(
            [("SKU-CHIPS", 2)], name="韩梅梅", phone="139", address="南京东路 1 号"
        )
    with pytest.raises(OrderError, match=r"latitude .* not a number"):
        orders.request_delivery(
            [("SKU-CHIPS", 2)], name="韩", phone="139", address="x", lat="north", lon="1"
        )
    assert counts(store)["outbox"] == 0
    rid = orders.request_delivery(
        [("SKU-CHIPS", 1), ("SKU-CHIPS", 1)],
        name="韩梅梅",
        phone="13900000000",
        address="南京东路 1 号",
        lat="31.2350",
        lon="121.48",
        request_id="REQ-1",
    )
    again = orders.request_delivery(
        [("SKU-CHIPS", 2)],
        name="韩梅梅",
        phone="13900000000",
        address="南京东路 1 号",
        lat="31.2350",
        lon="121.48",
        request_id=rid,
    )
    assert again == rid == "REQ-1"
    (event,) = events(store)
    assert event["type"] == p.ORDER_REQUESTED
    assert event["lines"] == [{"sku": "SKU-CHIPS", "qty": 2}]
    assert event["address"] == {"text": "南京东路 1 号", "lat": "31.2350", "lon": "121.48"}
    assert event["origin_store"] == "STORE-SH-001"
    p.OrderRequestedV1.model_validate(event)
    store.set_config("store.lat", "31.2")
    store.set_config("store.lon", "121.4")
    orders.request_delivery([("SKU-COLA", 1)], name="A", phone="1", address="here")
    assert events(store)[-1]["address"]["lat"] == "31.2"


@pytest.mark.parametrize("stage", ["handed_over", "shipped", "rejected"])
@pytest.mark.parametrize("action", ["accept", "pick", "ready", "hand_over", "revoke", "reject"])
def test_finished_orders_do_not_move(stage: str, action: str) -> None:
    assert (stage, action) not in TRANSITIONS
    with pytest.raises(OrderStateError, match="Nothing was changed"):
        advance(stage, action)


def test_every_stage_can_be_assigned_again() -> None:
    assert all(advance(s, "assigned") == "new" for s, _ in TRANSITIONS)


@pytest.mark.parametrize(
    "action", ["accept", "reject", "pick", "ready", "ship", "hand_over", "cancel_accept"]
)
def test_an_order_handled_at_another_till_takes_no_step_here(action: str) -> None:
    with pytest.raises(OrderStateError, match="handled at another till"):
        advance("elsewhere", action)
    assert advance("new", "accepted_elsewhere") == "elsewhere"
    assert advance("elsewhere", "completed_elsewhere") == "completed"
