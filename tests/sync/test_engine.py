"""The engine against the real HQ app (in-process, ASGI): a new till gets the catalogue from a
snapshot, sales reach HQ exactly once, HQ's changes reach the till page by page."""

from __future__ import annotations

from pathlib import Path

from hq import admin
from tests.sync.support import HQ, ean_of, make_hq, make_till


def hq_with_catalogue(tmp_path: Path, n: int = 5) -> HQ:
    hq = make_hq(tmp_path)
    hq.seed([f"A{i}" for i in range(n)], price=1000)
    return hq


async def test_a_new_till_loads_the_catalogue_and_its_sales_reach_hq(tmp_path: Path) -> None:
    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path)

    first = await till.sync()

    assert first.ok and first.snapshots == {"catalog": 5, "prices": 5, "config": 0, "orders": 0}
    assert till.catalogue() == hq.catalogue()
    product = till.service.lookup(ean_of("A0"))  # scanned: found by its barcode
    assert product is not None and product.sku == "A0" and product.price == 1000

    a = till.sell(("A1", 2))
    b = till.sell(("A2", 1), ("A3", 3), pay="wallet")
    report = await till.sync()

    assert report.ok and report.acked == 2 and report.pending == 0
    assert sorted(hq.sale_ids("S1")) == sorted([a.sale_id, b.sale_id])
    assert hq.on_hand("S1") == till.on_hand() == {"A1": -2, "A2": -1, "A3": -3}
    assert hq.payments_total("S1") == a.total + b.total
    assert [s for _, _, s in hq.event_seqs("S1", "till-1")] == ["applied", "applied"]
    await till.aclose()


async def test_hq_changes_arrive_page_by_page_and_a_page_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path)
    await till.sync()
    start = till.cursors()

    admin.set_price(hq.db, "A0", 1234)
    hq.seed(["B1", "B2"], price=500)  # new products (catalogue and price in one HQ transaction)
    admin.deactivate_products(hq.db, ["A4"])
    admin.set_config(hq.db, "receipt.footer", "谢谢惠顾")
    admin.add_staff(hq.db, "g1", name="王芳", store_id="S1")

    report = await till.sync()

    assert report.ok and report.pulled >= 6 and not report.snapshots
    assert till.catalogue() == hq.catalogue()
    assert "A4" not in till.catalogue() and till.catalogue()["A0"][1] == 1234
    assert dict(till.q("SELECT key, value FROM hq_config")) == {
        "receipt.footer": '"谢谢惠顾"',
        "staff:g1": '{"active": true, "name": "王芳", "role": "guide", "staff_id": "g1"}',
    }
    cursors = till.cursors()
    assert all(cursors[s] >= start[s] for s in start)

    # the same pages again (a retried pull): nothing moves
    from sync.protocol import PullRequest

    res = await till.engine.client.pull(
        PullRequest(device_time=till.clock(), cursors=start, limit=100)  # type: ignore[arg-type]
    )
    before = (till.catalogue(), till.cursors())
    assert till.state.apply_pages(list(res.pages.values())) == 0
    assert (till.catalogue(), till.cursors()) == before
    await till.aclose()


async def test_stock_movements_without_an_event_are_told_to_hq(tmp_path: Path) -> None:
    # a till whose catalogue import recorded initial stock: HQ must get those movements too,
    # or store and HQ disagree on every SKU at the end of the day
    from pos.store import stock

    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path)
    await till.sync()
    with till.store.transaction() as conn:
        stock.record(
            conn,
            [
                stock.Movement(f"A{i}", 10 + i, "initial", till.clock().isoformat())
                for i in range(5)
            ],
        )
    till.sell(("A1", 4))

    report = await till.sync()

    assert report.ok and report.pending == 0
    assert hq.on_hand("S1") == till.on_hand() == {"A0": 10, "A1": 7, "A2": 12, "A3": 13, "A4": 14}
    # told once: the next round adds nothing
    assert till.state.before_push(till.clock()) == 0
    assert (await till.sync()).pushed == 0
    assert hq.ledger_sums("S1") == till.ledger_sums()
    await till.aclose()


def test_a_push_body_is_the_protocol_message_with_the_committed_payload_bytes(
    tmp_path: Path,
) -> None:
    from sync.engine import push_body
    from sync.ports import PendingEvent
    from sync.protocol import PushRequest, canonical_json, payload_hash

    payload = {"sale_id": "x", "name": "可口可乐", "lines": [{"qty": 2}], "note": None}
    text = canonical_json(payload)
    event = PendingEvent(
        7,
        "0b5c3d4e-1f2a-4b3c-8d9e-0f1a2b3c4d5e",
        "till-1",
        "sale.completed",
        1,
        "2026-11-22T10:00:00.000+08:00",
        text,
        payload_hash(payload),
    )
    from tests.sync.support import T0

    req = PushRequest.model_validate_json(push_body([event], device_time=T0, pending=3))
    (env,) = req.batch
    assert env.seq == 7 and env.payload == payload and env.hash_matches()
    assert canonical_json(env.payload) == text and req.pending == 3


async def test_the_till_learns_its_clock_offset_from_hq(tmp_path: Path) -> None:
    from datetime import timedelta

    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path, skew=timedelta(minutes=7))
    await till.sync()
    status = till.engine.status()
    assert status.online and status.clock_offset_s is not None
    assert 7 * 60 - 5 < status.clock_offset_s < 7 * 60 + 5
    await till.aclose()


async def test_a_big_snapshot_goes_through_the_bulk_loader_with_the_same_result(
    tmp_path: Path, monkeypatch
) -> None:
    from pos.store import sync_state

    monkeypatch.setattr(sync_state, "BULK_THRESHOLD", 0)  # every snapshot counts as big
    hq = hq_with_catalogue(tmp_path, n=40)
    admin.deactivate_products(hq.db, ["A3"])  # its price stays at HQ: waits at the till
    till = make_till(hq, tmp_path)

    report = await till.sync()

    assert report.ok and report.snapshots["catalog"] == 39
    assert till.catalogue() == hq.catalogue()
    assert till.q("SELECT sku, price FROM sync_pending_price") == [("A3", 1000)]
    assert till.service.search("商品 A1")  # the name index was rebuilt
    sale = till.sell(("A7", 1))
    assert (await till.sync()).ok and hq.sale_ids("S1") == [sale.sale_id]
    await till.aclose()


async def test_a_big_import_is_told_to_hq_in_short_steps(tmp_path: Path, monkeypatch) -> None:
    from pos.store import stock, sync_state

    monkeypatch.setattr(sync_state, "ADOPT_WINDOW", 7)  # a window of 7 ledger positions
    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path)
    await till.sync()
    with till.store.transaction() as conn:
        stock.record(
            conn,
            [
                stock.Movement(f"A{i % 5}", 3, "initial", till.clock().isoformat())
                for i in range(30)
            ],
        )
    till.sell(("A2", 2))  # a sale in between: its movements already have their event
    with till.store.transaction() as conn:
        stock.record(conn, [stock.Movement("A4", 9, "receipt", till.clock().isoformat())])

    assert (await till.sync()).ok
    assert hq.on_hand("S1") == till.on_hand() == {"A0": 18, "A1": 18, "A2": 16, "A3": 18, "A4": 27}
    assert hq.ledger_sums("S1") == till.ledger_sums()
    await till.aclose()


async def test_acknowledged_events_are_kept_30_days_then_pruned(tmp_path: Path) -> None:
    from datetime import timedelta

    hq = hq_with_catalogue(tmp_path)
    till = make_till(hq, tmp_path)
    await till.sync()
    old = till.sell(("A1", 1))
    await till.sync()
    hq.clock.now += timedelta(days=20)
    recent = till.sell(("A2", 1))
    await till.sync()

    def kept() -> list[str]:
        return [str(p) for (p,) in till.q("SELECT state FROM outbox ORDER BY seq")]

    assert kept() == ["acked", "acked"]  # 20 days on: both kept for a re-push
    hq.clock.now += timedelta(days=11)  # 31 days after the first, 11 after the second
    pending = till.sell(("A3", 1))
    till.engine._last_prune = None  # the next round prunes (every 6 h otherwise)
    report = await till.sync()

    assert report.ok and kept() == ["acked", "acked"]  # the first pruned, the other two kept
    seqs = [int(s) for (s,) in till.q("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == [2, 3]
    assert sorted(hq.sale_ids("S1")) == sorted([old.sale_id, recent.sale_id, pending.sale_id])
    await till.aclose()
