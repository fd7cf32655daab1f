"""The platform's side of online orders end to end: a real HQ (in-process over a SQLite file)
and real stores (SQLite files run by the production sync engine and the store's order
service). The platform cancels through HQ's API and reads what its customer should hear from
the notification feed; the code in a ready-for-pickup notification is what the till accepts
at the counter."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hq import orders as hq_orders
from pos.domain.orders import PickupCodeError
from pos.store import orders as store_orders
from scanner.decode import Decoder
from scanner.schemes import parse_chain_payload
from sync import protocol as p
from tests.sync.orders_support import Chain, make_chain
from tests.sync.support import HQ, make_hq


@pytest.fixture
def hq(tmp_path: Path) -> HQ:
    return make_hq(tmp_path)


@pytest.fixture
async def chain(hq: HQ, tmp_path: Path) -> AsyncIterator[Chain]:
    c = await make_chain(hq, tmp_path)
    yield c
    await c.aclose()


def auth(chain: Chain) -> dict[str, str]:
    return {"Authorization": f"Bearer {chain.platform_key}"}


async def told(chain: Chain, order_id: str) -> list[dict[str, Any]]:
    r = await chain.client.get("/orders/v1/notifications", params={"after": 0}, headers=auth(chain))
    assert r.status_code == 200, r.text
    return [n for n in r.json()["notifications"] if n["order_id"] == order_id]


async def cancel(chain: Chain, ref: str) -> Any:
    return await chain.client.post(
        f"/orders/v1/platform-orders/{ref}/cancel",
        json={"reason": "the customer changed their mind"},
        headers=auth(chain),
    )


def scan_qr(data_uri: str) -> str:
    """What a camera at the counter reads from the QR the customer shows."""
    image = cv2.imdecode(
        np.frombuffer(base64.b64decode(data_uri.partition(",")[2]), np.uint8), cv2.IMREAD_COLOR
    )
    decoder = Decoder()
    try:
        (reading,) = decoder.decode_image(image)
    finally:
        decoder.close()
    return reading.text


async def test_platform_cancel_of_an_accepted_order_is_answered_at_the_till(
    chain: Chain,
) -> None:
    chain.s1.receive([("A", 5)])
    await chain.sync()
    placed = await chain.order([("A", 2)])
    oid, ref = placed["order_id"], placed["platform_order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    await chain.sync("S1")
    assert store_orders.held(s1.till.store, "A") == 2

    r = await cancel(chain, ref)
    assert r.status_code == 202 and r.json()["status"] == "cancel_requested"
    await chain.sync("S1")
    order = s1.orders.get(oid)
    assert order.assignment == "cancel_requested"
    assert [t.kind for t in store_orders.open_tasks(s1.till.store)] == ["answer_cancel"]
    assert [n["kind"] for n in await told(chain, oid)] == ["accepted"]  # not decided yet

    s1.orders.answer_cancel(oid, agree=True)
    await chain.sync("S1")
    assert s1.outbox_states(p.ORDER_CANCEL_ACCEPTED) == ["acked"]
    assert chain.view(oid)["state"] == "cancelled"
    notes = await told(chain, oid)
    assert [n["kind"] for n in notes] == ["accepted", "cancelled"]
    assert notes[-1]["partial"] is False
    assert store_orders.held(s1.till.store, "A") == 0
    assert hq_orders.holds(chain.hq.db, "S1") == {}
    assert chain.s1.till.on_hand() == {"A": 5}  # nothing left the store
    again = await cancel(chain, ref)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


async def test_cancel_before_acceptance_voids_the_stores_holds(chain: Chain) -> None:
    chain.s1.receive([("A", 5)])
    await chain.sync()
    placed = await chain.order([("A", 3)])
    oid, ref = placed["order_id"], placed["platform_order_id"]
    await chain.sync("S1")
    assert chain.s1.orders.get(oid).stage == "new"
    r = await cancel(chain, ref)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    await chain.sync("S1")
    mine = chain.s1.orders.get(oid)
    assert mine.assignment == "cancelled"
    assert chain.s1.orders.new_count() == 0
    assert store_orders.held(chain.s1.till.store, "A") == 0
    assert [n["kind"] for n in await told(chain, oid)] == ["cancelled"]


async def test_the_code_in_the_ready_notification_is_accepted_at_handover(chain: Chain) -> None:
    chain.s1.receive([("A", 5), ("B", 5)])
    await chain.sync()
    placed = await chain.order([("A", 2), ("B", 1)], pickup="S1")
    oid = placed["order_id"]
    s1 = chain.s1
    await chain.sync("S1")
    s1.orders.accept(oid)
    for sku in ("A", "A", "B"):
        s1.scan(oid, sku)
    s1.orders.confirm_pick(oid)
    s1.orders.ready(oid)
    await chain.sync("S1")
    accepted, ready = await told(chain, oid)
    assert (accepted["kind"], ready["kind"]) == ("accepted", "ready_for_pickup")
    assert ready["store"]["store_id"] == "S1"

    # the customer shows the QR: the till's scanner reads a pickup of this order
    payload = parse_chain_payload(scan_qr(ready["pickup_qr_png"]))
    assert payload is not None and payload.kind == "pickup" and payload.order_id == oid
    assert s1.orders.find_pickup(payload.value, payload.order_id).order_id == oid
    # the short code read aloud finds the same order
    assert s1.orders.find_pickup(ready["pickup_short_code"]).order_id == oid
    s1.orders.hand_over(oid, payload.value)
    with pytest.raises(PickupCodeError, match="already used"):
        s1.orders.find_pickup(payload.value, oid)
    await chain.sync("S1")
    notes = await told(chain, oid)
    assert [n["kind"] for n in notes] == ["accepted", "ready_for_pickup", "handed_over"]
    assert notes[-1]["order_complete"] is True
    assert sorted((ln["sku"], ln["qty"]) for ln in notes[-1]["lines"]) == [("A", 2), ("B", 1)]
    # handed over: too late to cancel
    r = await cancel(chain, placed["platform_order_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_fulfilled"
