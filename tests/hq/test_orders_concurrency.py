"""New orders on PostgreSQL lock only the orders partitions (stores) they write.

What must hold (see hq.changelog): a store that pulls its orders stream never sees number N
of its partition before every lower number of that partition is committed (else its cursor
would pass a change committed late and it would never get it); orders for different stores
do not wait for each other; two new orders never hold the same stock; orders split over the
same stores in any order never deadlock; a writer of the whole stream (a store's order events,
the tick) still excludes them all."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from hq import orders
from hq.changelog import pull_page, stream_head
from hq.db import Database, database_url, devices, order_holds, products, stock_on_hand, stores

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def pg_db(pg_dsn: str):  # type: ignore[no-untyped-def]
    from tests.hq.conftest import _drop_pg_schema, _pg_schema

    schema = _pg_schema(pg_dsn)
    db = Database(database_url(pg_dsn), pg_schema=schema, pool_size=12)
    db.create_schema()
    orders.add_platform(db, "web")
    yield db
    db.dispose()
    _drop_pg_schema(pg_dsn, schema)


def _chain(db: Database, places: dict[str, tuple[float, float]], stock: dict[str, dict]) -> None:
    """Stores at places, all synced recently, with stock {store: {sku: on_hand}}."""
    skus = sorted({sku for items in stock.values() for sku in items})
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [{"sku": s, "name": s, "tax_rate_bp": 0, "active": True, "row": "{}"} for s in skus],
        )
        conn.execute(
            stores.insert(),
            [
                {
                    "store_id": s,
                    "name": s,
                    "lat": la,
                    "lon": lo,
                    "timezone": "UTC",
                    "created_at": NOW,
                }
                for s, (la, lo) in places.items()
            ],
        )
        conn.execute(
            devices.insert(),
            [
                {
                    "store_id": s,
                    "device_id": "till-1",
                    "token_hash": f"h-{s}",
                    "last_applied_seq": 0,
                    "created_at": NOW,
                    "last_seen_at": NOW,
                }
                for s in places
            ],
        )
        conn.execute(
            stock_on_hand.insert(),
            [
                {"store_id": s, "sku": sku, "on_hand": n}
                for s, items in stock.items()
                for sku, n in items.items()
            ],
        )


def _order(n: Any, at: tuple[float, float], lines: list[tuple[str, int]]) -> orders.OrderIntake:
    return orders.OrderIntake.model_validate(
        {
            "platform_order_id": f"P-{n}",
            "lines": [{"sku": s, "qty": q} for s, q in lines],
            "delivery": {"type": "delivery", "address": {"text": "x", "lat": at[0], "lon": at[1]}},
            "customer": {"name": "c", "phone": "1"},
        }
    )


def _blocked_by(db: Database, pid: int) -> bool:
    with db.read() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        ).scalar_one()
    return bool(n)


def _pull_all(db: Database, store: str, cursor: int = 0) -> tuple[list[int], int]:
    seen: list[int] = []
    while True:
        with db.read(snapshot=True) as conn:
            page = pull_page(conn, "orders", cursor, 50, store)
        seen.extend(c.seq for c in page.changes)
        cursor = page.cursor
        if not page.has_more:
            return seen, cursor


def _held_open(db: Database, store: str, sku: str, order_no: str) -> tuple[Any, ...]:
    """A new order for ``store`` dispatched up to its commit, which waits for ``go``."""
    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    pid: list[int] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with orders.transaction(db, NOW, shared=True) as tx:
                pid.append(tx.conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                orders._intake(
                    tx, "web", _order(order_no, (31.0, 121.0), [(sku, 1)]), origin_store=None
                )
                tx.flush()  # numbered and written; the commit waits
                ready.set()
                assert go.wait(60)
            done.set()
        except BaseException as error:
            failed.append(error)
            ready.set()

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(60) and not failed, failed
    return t, go, done, pid[0]


def test_other_stores_orders_pass_a_store_whose_order_is_not_committed(pg_db: Database) -> None:
    db = pg_db
    _chain(db, {"S1": (31.0, 121.0), "S2": (39.9, 116.4)}, {"S1": {"A": 5}, "S2": {"B": 5}})
    t, go, done, _pid = _held_open(db, "S1", "A", "1")
    # an order for S2 is taken and committed while S1's is still open: nothing waits for it
    started = time.monotonic()
    order_id, _ = orders.submit(db, "web", _order("2", (39.9, 116.4), [("B", 1)]), now=NOW)
    assert time.monotonic() - started < 5 and not done.is_set()
    s2, s2_cursor = _pull_all(db, "S2")
    assert len(s2) == 1
    # S1 sees nothing yet: its head stays below the open order's number
    assert _pull_all(db, "S1") == ([], 0)
    go.set()
    t.join(60)
    s1, s1_cursor = _pull_all(db, "S1")
    assert len(s1) == 1 and s1[0] < s2[0]  # drawn first, committed last, still seen
    with db.read() as conn:
        assert stream_head(conn, "orders", "S1")[0] == s1_cursor == s1[0]
        assert stream_head(conn, "orders", "S2")[0] == s2_cursor
    assert orders.view(db, order_id)["assignments"][0]["store_id"] == "S2"


def test_a_second_order_for_the_same_store_waits_and_numbers_after(pg_db: Database) -> None:
    db = pg_db
    _chain(db, {"S1": (31.0, 121.0)}, {"S1": {"A": 5}})
    t, go, _done, pid = _held_open(db, "S1", "A", "1")
    second: list[str] = []
    tb = threading.Thread(
        target=lambda: second.append(
            orders.submit(db, "web", _order("2", (31.0, 121.0), [("A", 1)]), now=NOW)[0]
        )
    )
    tb.start()
    for _ in range(3000):  # until the second order waits for S1's partition
        if _blocked_by(db, pid):
            break
        time.sleep(0.01)
    assert _blocked_by(db, pid) and not second
    assert _pull_all(db, "S1") == ([], 0)
    go.set()
    t.join(60)
    tb.join(60)
    seen, _ = _pull_all(db, "S1")
    assert len(seen) == 2 and seen == sorted(seen)
    assert orders.holds(db, "S1") == {"A": 2}


def test_concurrent_orders_and_pulls_never_skip_a_change(pg_db: Database) -> None:
    """Eight platforms submit orders for six stores while each store pulls in a loop; every
    store ends up having seen exactly its partition's changes, in increasing order."""
    db = pg_db
    places = {f"S{i}": (31.0 + i * 2.0, 121.0) for i in range(6)}
    _chain(db, places, {s: {"A": 10_000, "B": 10_000} for s in places})
    stop = threading.Event()
    seen: dict[str, list[int]] = defaultdict(list)
    errors: list[BaseException] = []

    def reader(store: str) -> None:
        cursor = 0
        try:
            while True:
                last = stop.is_set()
                with db.read(snapshot=True) as conn:
                    page = pull_page(conn, "orders", cursor, 3, store)
                seen[store].extend(c.seq for c in page.changes)
                cursor = page.cursor
                if last and not page.has_more:
                    return
        except BaseException as error:
            errors.append(error)

    def platform(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(15):
                store = rng.choice(sorted(places))
                la, lo = places[store]
                lines = [(sku, 1) for sku in sorted(rng.sample(["A", "B"], rng.randint(1, 2)))]
                orders.submit(db, "web", _order(f"{n}-{i}", (la, lo), lines), now=NOW)
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=reader, args=(s,)) for s in places]
    writers = [threading.Thread(target=platform, args=(n,)) for n in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(300)
    stop.set()
    for t in readers:
        t.join(300)
    assert not errors, errors
    with db.read() as conn:
        logged = defaultdict(list)
        for store_id, seq in conn.execute(
            text("SELECT store_id, seq FROM changes WHERE stream = 'orders' ORDER BY seq")
        ):
            logged[store_id].append(int(seq))
    assert sum(len(v) for v in logged.values()) == 8 * 15
    for store in places:
        assert seen[store] == logged[store], store


def test_split_orders_over_the_same_stores_neither_deadlock_nor_overhold(
    pg_db: Database,
) -> None:
    """A has only X, B only Y: every order is split over both, and the plan names them in
    either order. Z is scarce at C (4 units): orders for it race for the last ones."""
    db = pg_db
    places = {"A": (31.0, 121.0), "B": (31.001, 121.0), "C": (31.0, 121.001), "D": (33.0, 121.0)}
    _chain(
        db,
        places,
        {"A": {"X": 1000}, "B": {"Y": 1000}, "C": {"Z": 4}, "D": {"Z": 1000}},
    )
    errors: list[BaseException] = []

    def platform(n: int) -> None:
        try:
            for i in range(6):
                lines = [("X", 1), ("Y", 1)] if i % 2 == 0 else [("Z", 1)]
                at = (31.0, 121.0 + (0.002 if n % 2 else -0.002))
                orders.submit(db, "web", _order(f"{n}-{i}", at, lines), now=NOW)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=platform, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    with db.read() as conn:
        held = {(r.store_id, r.sku): int(r.held) for r in conn.execute(select(order_holds))}
    assert held[("A", "X")] == held[("B", "Y")] == 24
    # C never holds more than it has; D (farther) takes the rest
    assert held[("C", "Z")] == 4 and held[("D", "Z")] == 20


def test_a_whole_stream_writer_waits_for_new_orders_and_moves_the_watermark(
    pg_db: Database,
) -> None:
    db = pg_db
    _chain(db, {"S1": (31.0, 121.0), "S2": (39.9, 116.4)}, {"S1": {"A": 5}, "S2": {"A": 5}})
    t, go, _done, pid = _held_open(db, "S1", "A", "1")
    ticked = threading.Event()
    tick = threading.Thread(
        target=lambda: (orders.tick(db, now=NOW + timedelta(seconds=1)), ticked.set())
    )
    tick.start()
    for _ in range(3000):
        if _blocked_by(db, pid):
            break
        time.sleep(0.01)
    assert _blocked_by(db, pid) and not ticked.is_set()
    go.set()
    t.join(60)
    tick.join(60)
    assert ticked.is_set()
    # S2 has no orders, yet its cursor moves past S1's number (compaction will not reset it)
    s1, _ = _pull_all(db, "S1")
    seen, cursor = _pull_all(db, "S2")
    assert seen == [] and cursor >= s1[0]


def test_an_order_planned_on_stock_another_order_holds_meanwhile_goes_elsewhere(
    pg_db: Database,
) -> None:
    """S1 has one A, S2 (farther) has plenty. The first order is held open at S1; the second
    plans on S1 too (the first is not committed), waits for S1's partition, finds the unit
    taken and plans again: S2."""
    db = pg_db
    _chain(db, {"S1": (31.0, 121.0), "S2": (31.5, 121.0)}, {"S1": {"A": 1}, "S2": {"A": 50}})
    t, go, _done, pid = _held_open(db, "S1", "A", "1")
    second: list[str] = []
    tb = threading.Thread(
        target=lambda: second.append(
            orders.submit(db, "web", _order("2", (31.0, 121.0), [("A", 1)]), now=NOW)[0]
        )
    )
    tb.start()
    for _ in range(3000):
        if _blocked_by(db, pid):
            break
        time.sleep(0.01)
    assert _blocked_by(db, pid) and not second  # it chose S1 and waits for its partition
    go.set()
    t.join(60)
    tb.join(60)
    assert [a["store_id"] for a in orders.view(db, second[0])["assignments"]] == ["S2"]
    assert orders.holds(db, "S1") == {"A": 1} and orders.holds(db, "S2") == {"A": 1}
