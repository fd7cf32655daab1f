"""The e-commerce platform's side of online orders, through HQ's real HTTP API (in-process),
on SQLite and on PostgreSQL: what the customer should hear (the notification feed), cancel by
the platform's order id, and the order's status; each platform sees only its own orders."""

from __future__ import annotations

import base64
import threading
from typing import Any

import cv2
import numpy as np
from click.testing import CliRunner

from hq import notify, orders
from hq.cli import cli
from hq.db import Database, utcnow
from scanner.decode import Decoder
from scanner.schemes import parse_chain_payload
from sync import protocol as p
from tests.hq.order_support import Chain, chain, handover_payload, kinds, live

PICK_AB = {
    "lines": [
        {"line_id": "L1", "sku": "A", "qty_ordered": 2, "qty_picked": 2},
        {"line_id": "L2", "sku": "B", "qty_ordered": 1, "qty_picked": 1},
    ]
}


async def feed(c: Chain, after: int = 0, *, key: str | None = None, **params: Any) -> Any:
    r = await c.client.get(
        "/orders/v1/notifications",
        params={"after": after, **params},
        headers={"Authorization": f"Bearer {key or c.key}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def told(c: Chain, order_id: str) -> list[dict[str, Any]]:
    """Every notification of the order the platform can read, following the cursor."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = await feed(c, cursor, limit=2)
        out.extend(page["notifications"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return [n for n in out if n["order_id"] == order_id]


async def cancel(c: Chain, ref: str, body: Any = None, *, key: str | None = None) -> Any:
    return await c.client.post(
        f"/orders/v1/platform-orders/{ref}/cancel",
        json=body,
        headers={"Authorization": f"Bearer {key or c.key}"},
    )


def decoded_qr(data_uri: str) -> str:
    head, _, data = data_uri.partition(",")
    assert head == "data:image/png;base64"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    decoder = Decoder()
    try:
        readings = decoder.decode_image(image)
    finally:
        decoder.close()
    assert [r.symbology for r in readings] == ["QR Code"], readings
    return readings[0].text


async def test_a_pickup_order_tells_the_customer_each_step_once_with_a_scannable_code(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5), ("B", 5)])
        o = await c.order([("A", 2), ("B", 1)], pickup="S1", ref="TM-P1")
        oid = o["order_id"]
        assert await told(c, oid) == []  # placed and assigned: nothing the customer waits for
        for type_, extra in [
            (p.ORDER_ACCEPTED, {}),
            (p.ORDER_PICKED, PICK_AB),
            (p.ORDER_READY, {}),
        ]:
            assert (await c.send("S1", type_, {"order_id": oid, "epoch": 1, **extra})).status == (
                "applied"
            )
        till = c.tills["S1"]
        env = till.event(p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2), ("B", 1)]))
        assert (await till.push(c.client, [env])).results[0].status == "applied"
        # the same handover pushed again changes nothing and tells nothing again
        again = await till.push(c.client, [env])
        assert again.results[0].status == "duplicate"
        notes = await told(c, oid)
        assert [n["kind"] for n in notes] == ["accepted", "ready_for_pickup", "handed_over"]
        assert [n["seq"] for n in notes] == [1, 2, 3]
        assert len({n["notification_id"] for n in notes}) == 3
        accepted, ready, handed = notes
        assert accepted["store"] == {"store_id": "S1", "name": "Store S1"}
        assert [(ln["sku"], ln["qty"]) for ln in accepted["lines"]] == [("A", 2), ("B", 1)]
        assert accepted["platform_order_id"] == "TM-P1"
        # the code the customer is shown is the one the store checks
        assert ready["pickup_code"] == o["pickup_code"]
        assert ready["pickup_qr"] == o["pickup_qr"] == f"PICKUP:{oid}:{o['pickup_code']}"
        assert ready["pickup_short_code"] == f"P{o['pickup_code']}"
        scanned = parse_chain_payload(decoded_qr(ready["pickup_qr_png"]))
        assert scanned is not None and scanned.kind == "pickup"
        assert (scanned.order_id, scanned.value) == (oid, o["pickup_code"])
        assert p.pickup_code_hash(scanned.value) == (await c.rows("S1"))[oid]["pickup_code_hash"]
        assert handed["order_complete"] is True and handed["outstanding"] == []
        assert handed["order_state"] == "completed"

        # reading again gives the same notifications (at least once, same ids to drop)
        again = await feed(c, 0)
        assert [n["notification_id"] for n in again["notifications"]] == [
            n["notification_id"] for n in notes
        ]
        assert (again["cursor"], again["head"], again["has_more"]) == (3, 3, False)
        page = await feed(c, 1, limit=1)
        assert [n["seq"] for n in page["notifications"]] == [2] and page["has_more"]
        assert (await feed(c, 3))["notifications"] == []
        assert (await feed(c, 99))["cursor"] == 3  # HQ restored from an older backup

        shown = CliRunner().invoke(cli, ["order", "show", oid], obj={"database": db})
        assert shown.exit_code == 0, shown.output
        assert "ready_for_pickup" in shown.output and "told the platform" in shown.output


async def test_split_delivery_tells_shipped_partial_and_delayed_lines_once(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 1)])
        await c.stock("S2", [("B", 1)])
        o = await c.order([("A", 1), ("B", 1), ("C", 2)], ref="TM-S1")
        oid = o["order_id"]
        assert o["state"] == "backorder"
        assert sorted(live(o)) == [("S1", 1, "assigned"), ("S2", 1, "assigned")]
        [delayed] = await told(c, oid)
        assert delayed["kind"] == "delayed" and delayed["partial"] is True
        assert [(ln["sku"], ln["qty"]) for ln in delayed["lines"]] == [("C", 2)]
        assert delayed["retry_at"]

        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        await c.send("S2", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        # the duty retries; still no C anywhere: the customer is not told the same again
        c.clock.advance(minutes=16)
        await c.touch("S1", "S2", "S3")
        assert c.tick().retried == 1
        assert [n["kind"] for n in await told(c, oid)] == ["delayed", "accepted", "accepted"]

        await c.send(
            "S1",
            p.ORDER_PICKED,
            {
                "order_id": oid,
                "epoch": 1,
                "lines": [{"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1}],
            },
        )
        shipped = await c.send(
            "S1", p.ORDER_SHIPPED, {**handover_payload(oid, 1, [("A", 1)]), "tracking": "SF100"}
        )
        assert shipped.status == "applied", shipped
        notes = await told(c, oid)
        assert [n["kind"] for n in notes] == ["delayed", "accepted", "accepted", "shipped"]
        sent = notes[-1]
        assert sent["tracking"] == "SF100" and sent["store"]["store_id"] == "S1"
        assert [(ln["sku"], ln["qty"]) for ln in sent["lines"]] == [("A", 1)]
        assert sent["order_complete"] is False
        assert [(ln["sku"], ln["qty"]) for ln in sent["outstanding"]] == [("B", 1), ("C", 2)]

        # C arrives far away: the retry sources it, the customer hears of no new delay
        await c.stock("S3", [("C", 2)])
        c.clock.advance(minutes=16)
        await c.touch("S1", "S2", "S3")
        assert c.tick().retried == 1
        assert [n["kind"] for n in await told(c, oid)] == [
            "delayed",
            "accepted",
            "accepted",
            "shipped",
        ]
        status = (await c.client.get("/orders/v1/platform-orders/TM-S1", headers=c.auth)).json()
        assert status["status"] == "partially_fulfilled" and status["state"] == "open"


async def test_cancel_before_any_store_accepted_is_immediate_and_idempotent(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        o = await c.order([("A", 2)], ref="TM-C1")
        oid = o["order_id"]
        assert orders.holds(db, "S1") == {"A": 2}
        r = await cancel(c, "TM-C1", {"reason": "changed my mind"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["order_id"], body["waiting_for"]) == ("cancelled", oid, [])
        assert body["order"]["state"] == "cancelled" and body["order"]["status"] == "cancelled"
        assert body["order"]["cancel"]["state"] == "cancelled"
        assert orders.holds(db, "S1") == {}
        assert live(c.view(oid)) == []
        assert (await c.rows("S1"))[oid]["assignment"] == "cancelled"  # the till voids its holds
        [note] = await told(c, oid)
        assert note["kind"] == "cancelled" and note["partial"] is False
        assert "platform" in note["reason"]

        again = await cancel(c, "TM-C1")  # no body at all
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert len(await told(c, oid)) == 1
        assert kinds(c.view(oid)).count("platform_cancel_requested") == 1
        # a late accept of the voided epoch is superseded; the order stays cancelled
        late = await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert late.status == "superseded"
        assert c.view(oid)["state"] == "cancelled"

        # a backordered order has no store to ask
        none = await c.order([("C", 1)], ref="TM-C2")
        assert none["state"] == "backorder"
        r = await cancel(c, "TM-C2")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        c.clock.advance(minutes=30)
        await c.stock("S1", [("C", 1)])
        assert c.tick().retried == 0  # never dispatched again
        assert [n["kind"] for n in await told(c, none["order_id"])] == ["delayed", "cancelled"]


async def test_cancel_after_acceptance_waits_for_the_store(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 2)], ref="TM-W1"))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        r = await cancel(c, "TM-W1", {"reason": "ordered twice"})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "cancel_requested" and r.json()["waiting_for"] == ["S1"]
        assert r.json()["order"]["status"] == "cancel_requested"
        assert (await c.rows("S1"))[oid]["assignment"] == "cancel_requested"
        assert orders.holds(db, "S1") == {"A": 2}  # held until the store agrees
        again = await cancel(c, "TM-W1")
        assert again.status_code == 202
        assert kinds(c.view(oid)).count("cancel_requested") == 1  # asked once
        # nothing re-dispatches the order meanwhile, however long the store takes
        c.clock.advance(minutes=30)
        await c.touch("S1", "S2")
        assert not c.tick()
        assert [n["kind"] for n in await told(c, oid)] == ["accepted"]

        res = await c.send("S1", p.ORDER_CANCEL_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert res.status == "applied"
        v = c.view(oid)
        assert v["state"] == "cancelled" and live(v) == []
        assert (await c.rows("S1"))[oid]["assignment"] == "cancelled"
        assert orders.holds(db, "S1") == {}
        notes = await told(c, oid)
        assert [n["kind"] for n in notes] == ["accepted", "cancelled"]
        st = (await c.client.get("/orders/v1/platform-orders/TM-W1", headers=c.auth)).json()
        assert st["cancel"]["state"] == "cancelled" and st["cancel"]["reason"] == "ordered twice"
        assert (await cancel(c, "TM-W1")).status_code == 200


async def test_a_store_that_refuses_or_hands_over_first_keeps_the_order(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5), ("B", 5)])
        oid = (await c.order([("A", 2), ("B", 1)], ref="TM-R1", pickup="S1"))["order_id"]
        for type_, extra in [
            (p.ORDER_ACCEPTED, {}),
            (p.ORDER_PICKED, PICK_AB),
            (p.ORDER_READY, {}),
        ]:
            await c.send("S1", type_, {"order_id": oid, "epoch": 1, **extra})
        assert (await cancel(c, "TM-R1")).status_code == 202
        res = await c.send(
            "S1", p.ORDER_CANCEL_REFUSED, {"order_id": oid, "epoch": 1, "reason": "already packed"}
        )
        assert res.status == "applied"
        v = c.view(oid)
        assert v["state"] == "open" and live(v) == [("S1", 1, "ready")]
        refused = (await told(c, oid))[-1]
        assert refused["kind"] == "cancel_refused" and "already packed" in refused["reason"]
        assert refused["store"]["store_id"] == "S1"
        st = (await c.client.get("/orders/v1/platform-orders/TM-R1", headers=c.auth)).json()
        assert st["status"] == "ready_for_pickup" and st["cancel"]["state"] == "refused"

        # asked again, the store hands the goods over before it answers
        assert (await cancel(c, "TM-R1")).status_code == 202
        res = await c.send(
            "S1", p.ORDER_HANDED_OVER, handover_payload(oid, 1, [("A", 2), ("B", 1)])
        )
        assert res.status == "applied"
        assert c.view(oid)["state"] == "completed"
        kinds_told = [n["kind"] for n in await told(c, oid)]
        assert kinds_told == [
            "accepted",
            "ready_for_pickup",
            "cancel_refused",
            "handed_over",
            "cancel_refused",
        ]
        gone = await cancel(c, "TM-R1")
        assert gone.status_code == 409
        assert gone.json()["error"]["code"] == "already_fulfilled"
        assert gone.json()["error"]["detail"]["order_id"] == oid


async def test_an_unreachable_store_is_forced_and_the_order_cancelled(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.stock("S2", [("A", 5)])
        oid = (await c.order([("A", 1)], ref="TM-F1"))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert (await cancel(c, "TM-F1")).status_code == 202
        c.clock.advance(hours=2, minutes=5)
        await c.touch("S2")
        assert c.tick().forced == 1
        v = c.view(oid)
        assert v["state"] == "cancelled" and live(v) == []  # not sent to S2 instead
        assert [n["kind"] for n in await told(c, oid)] == ["accepted", "cancelled"]


async def test_a_partly_shipped_order_cannot_be_cancelled(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 1)])
        await c.stock("S2", [("B", 1)])
        oid = (await c.order([("A", 1), ("B", 1)], ref="TM-X1"))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        await c.send(
            "S1",
            p.ORDER_PICKED,
            {
                "order_id": oid,
                "epoch": 1,
                "lines": [{"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1}],
            },
        )
        await c.send(
            "S1", p.ORDER_SHIPPED, {**handover_payload(oid, 1, [("A", 1)]), "tracking": "T1"}
        )
        r = await cancel(c, "TM-X1")
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "already_fulfilled" and "partly" in err["message"]
        assert [ln["sku"] for ln in err["detail"]["fulfilled_lines"]] == ["A"]
        assert live(c.view(oid)) == [("S2", 1, "assigned")]  # nothing changed


async def test_a_platform_sees_and_cancels_only_its_own_orders(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        jd = orders.add_platform(db, "jd")
        jd_auth = {"Authorization": f"Bearer {jd}"}
        mine = await c.order([("A", 1)], ref="SAME-1")
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": mine["order_id"], "epoch": 1})
        # jd knows tmall's ids, but they are not jd's orders
        r = await c.client.get("/orders/v1/platform-orders/SAME-1", headers=jd_auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (
            await c.client.get(f"/orders/v1/{mine['order_id']}", headers=jd_auth)
        ).status_code == 404
        r = await cancel(c, "SAME-1", key=jd)
        assert r.status_code == 404
        assert c.view(mine["order_id"])["state"] == "open"
        assert (await feed(c, 0, key=jd))["notifications"] == []
        # jd's own order under the same id is another order
        body = {
            "platform_order_id": "SAME-1",
            "lines": [{"sku": "A", "qty": 1}],
            "delivery": {"type": "pickup", "store_id": "S1"},
            "customer": {"name": "韩梅梅", "phone": "13900000000"},
        }
        theirs = (await c.client.post("/orders/v1", json=body, headers=jd_auth)).json()
        assert theirs["order_id"] != mine["order_id"]
        r = await cancel(c, "SAME-1", key=jd)
        assert r.status_code == 200 and r.json()["order_id"] == theirs["order_id"]
        assert c.view(mine["order_id"])["state"] == "open"
        assert [n["order_id"] for n in (await feed(c, 0, key=jd))["notifications"]] == [
            theirs["order_id"]
        ]
        assert [n["kind"] for n in (await feed(c, 0))["notifications"]] == ["accepted"]
        got = await c.client.get("/orders/v1/platform-orders/SAME-1", headers=c.auth)
        assert got.json()["order_id"] == mine["order_id"] and got.json()["status"] == "accepted"


async def test_bad_requests_get_a_clear_json_error(db: Database) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5)])
        await c.order([("A", 1)], ref="TM-E1")
        cases = [
            (await c.client.get("/orders/v1/notifications"), 401, "unauthorized"),
            (
                await c.client.get(
                    "/orders/v1/notifications", headers={"Authorization": "Bearer x"}
                ),
                401,
                "unauthorized",
            ),
            (
                await c.client.get("/orders/v1/notifications?limit=0", headers=c.auth),
                422,
                "validation_error",
            ),
            (
                await c.client.get("/orders/v1/notifications?after=-1", headers=c.auth),
                422,
                "validation_error",
            ),
            (
                await c.client.get("/orders/v1/notifications?after=x", headers=c.auth),
                422,
                "validation_error",
            ),
            (await cancel(c, "TM-E1", {"why": "no"}), 422, "validation_error"),
            (await cancel(c, "TM-E1", {"reason": "x" * 501}), 422, "validation_error"),
            (
                await c.client.post(
                    "/orders/v1/platform-orders/TM-E1/cancel", content=b"{nope", headers=c.auth
                ),
                400,
                "malformed_json",
            ),
            (
                await c.client.get("/orders/v1/platform-orders/TM-E1/cancel", headers=c.auth),
                405,
                "method_not_allowed",
            ),
            (await cancel(c, "NOPE"), 404, "not_found"),
            (
                await c.client.get("/orders/v1/platform-orders/NOPE", headers=c.auth),
                404,
                "not_found",
            ),
            (await cancel(c, "TM-E1", key="hqp_unknown"), 401, "unauthorized"),
        ]
        for r, status, code in cases:
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
            assert r.json()["error"]["message"]
        # an id with a slash is still one id
        assert (await cancel(c, "A/B")).status_code == 404
        assert c.view((await c.order([("A", 1)], ref="TM-E2"))["order_id"])["state"] == "open"


def test_numbers_follow_commits_under_concurrent_writers(db: Database) -> None:
    """Writers that number notifications of one platform at once: every number is used
    once, in the order the transactions committed, whatever order they started in."""
    per_writer, writers = 15, 4
    errors: list[BaseException] = []
    start = threading.Barrier(writers)
    committed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def write(w: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with db.write() as conn:
                    item = {
                        "platform": "tmall",
                        "order_id": f"O-{w}-{i}",
                        "kind": "accepted",
                        "body": {"kind": "accepted", "order_id": f"O-{w}-{i}", "n": i},
                    }
                    notify.store(db, conn, [item], utcnow())
                with lock:
                    committed.append((w, i))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    page = notify.feed(db, "tmall", 0, 500)
    seqs = [n["seq"] for n in page["notifications"]]
    assert seqs == list(range(1, per_writer * writers + 1))
    assert len({n["notification_id"] for n in page["notifications"]}) == len(seqs)
    # each writer's own notifications are numbered in the order it committed them
    for w in range(writers):
        mine = [n["n"] for n in page["notifications"] if n["order_id"].startswith(f"O-{w}-")]
        assert mine == list(range(per_writer))


def test_cancel_and_feed_from_the_command_line(db: Database) -> None:
    from tests.hq.support import register, seed_catalog
    from tests.hq.test_orders_cli import _stock, run

    seed_catalog(db, ["A"])
    register(db, "S1", lat=31.23, lon=121.47)
    _stock(db, "S1", [("A", 3)])
    ref_args = ["--name", "李雷", "--phone", "1", "--pickup", "S1", "--line", "A:1"]
    run(db, "order", "create", "--platform", "phone", "--ref", "PH-1", *ref_args)
    oid = run(
        db, "order", "create", "--platform", "phone", "--ref", "PH-2", *ref_args
    ).stdout.strip()
    out = run(
        db, "order", "cancel", "--platform", "phone", "--ref", "PH-1", "--reason", "no"
    ).stdout
    assert out.strip().endswith(": cancelled")
    assert run(db, "order", "cancel", oid).stdout.strip() == f"{oid}: cancelled"
    listed = run(db, "order", "notifications", "--platform", "phone").stdout
    told_kinds = [ln.split()[2] for ln in listed.splitlines()]
    assert told_kinds.count("cancelled") == 2 and oid in listed
    lines = run(
        db, "order", "notifications", "--platform", "phone", "--json", "--after", "1"
    ).stdout
    assert any(oid in ln for ln in lines.splitlines() if ln.startswith("{"))
    bad = CliRunner().invoke(cli, ["order", "cancel", "ORD-NOPE"], obj={"database": db})
    assert bad.exit_code != 0 and "no order ORD-NOPE" in bad.output


async def test_a_pickup_packed_while_the_cancel_is_asked_still_tells_its_code(
    db: Database,
) -> None:
    async with chain(db) as c:
        await c.stock("S1", [("A", 5), ("B", 5)])
        o = await c.order([("A", 2), ("B", 1)], ref="TM-K1", pickup="S1")
        oid = o["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        assert (await cancel(c, "TM-K1")).status_code == 202
        # the till had not pulled the request yet: it packs, then sees it and refuses
        for type_, extra in [(p.ORDER_PICKED, PICK_AB), (p.ORDER_READY, {})]:
            res = await c.send("S1", type_, {"order_id": oid, "epoch": 1, **extra})
            assert res.status == "applied", res
        assert c.view(oid)["state"] == "cancelling"
        res = await c.send(
            "S1", p.ORDER_CANCEL_REFUSED, {"order_id": oid, "epoch": 1, "reason": "packed"}
        )
        assert res.status == "applied"
        notes = await told(c, oid)
        assert [n["kind"] for n in notes] == ["accepted", "ready_for_pickup", "cancel_refused"]
        assert notes[1]["pickup_code"] == o["pickup_code"]
        assert live(c.view(oid)) == [("S1", 1, "ready")]
