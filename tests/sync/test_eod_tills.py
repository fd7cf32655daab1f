"""End of day in a store with TWO tills, end to end: a real HQ (its app on a SQLite file and on
PostgreSQL), two till files with their own tokens, the production sync engine and the end-of-day
service. Each till verifies what it produced itself; the other till's last sync is shown, not
compared; a movement HQ quarantined is listed as a difference."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from hq.app import create_app
from hq.db import Database
from pos.services.eod import EodReport, end_of_day, report_lines
from pos.store import stock
from sync import protocol as p
from tests.sync.support import HQ, Till, make_till

SKUS = ["C1", "C2", "C3"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HQ]:
    path = tmp_path / "hq.db"
    schema = None
    if request.param == "sqlite":
        db = Database(str(path))
    else:
        from hq.db import database_url
        from tests.hq.conftest import _drop_pg_schema, _pg_schema

        dsn = request.getfixturevalue("pg_dsn")
        schema = _pg_schema(dsn)
        db = Database(database_url(dsn), pg_schema=schema, pool_size=4)
    db.create_schema()
    hq = HQ(path, db)
    hq.seed(SKUS, price=450)
    yield hq
    db.dispose()
    if schema is not None:
        _drop_pg_schema(request.getfixturevalue("pg_dsn"), schema)


@pytest.fixture
def tills(hq: HQ, tmp_path: Path) -> Iterator[tuple[Till, Till]]:
    t1 = make_till(hq, tmp_path, "S1", "till-1")
    t2 = make_till(hq, tmp_path, "S1", "till-2")
    yield t1, t2


async def close(*tills: Till) -> None:
    for t in tills:
        await t.aclose()


async def eod(till: Till) -> EodReport:
    day = till.clock().astimezone(till.store.identity.zone).date()
    return await end_of_day(till.engine, till.store, day)


async def test_two_tills_each_verify_their_own_day(hq: HQ, tills: tuple[Till, Till]) -> None:
    t1, t2 = tills
    try:
        assert (await t1.sync()).ok and (await t2.sync()).ok  # both load HQ's catalogue
        t1.sell(("C1", 2))
        t1.sell(("C2", 1), pay="card")
        t2.sell(("C1", 1), ("C3", 3), pay="wallet")
        assert (await t1.sync()).ok and (await t2.sync()).ok

        r1, r2 = await eod(t1), await eod(t2)
        assert r1.verified, r1.problems
        assert r2.verified, r2.problems
        assert (r1.scope, r1.device_id, r1.store_id) == ("device", "till-1", "S1")
        assert (r1.store.count, r1.hq.count if r1.hq else None) == (2, 2)
        assert r1.hq_store is not None and r1.hq_store.count == 3  # both tills at HQ
        assert {d.sku: (d.store, d.hq) for d in r1.stock_differences} == {}
        assert r1.stock_checked == 2 and r2.stock_checked == 2
        assert r1.store_stock_checked is None  # two tills: no store-wide on-hand verdict
        assert [o.device_id for o in r1.other_tills] == ["till-2"]
        assert [o.device_id for o in r2.other_tills] == ["till-1"]
        text = "\n".join(report_lines(r1))
        assert "VERIFIED: this till and HQ agree on its sales and stock movements." in text
        assert "Compared: this till's own sales and stock movements" in text
        assert "till-2: last synced just now" in text
        assert "HQ's store-wide totals of the day include them: 3 sale(s), ¥31.50." in text
        assert all(len(line) <= 76 for line in report_lines(r1))

        # three hours later till-2 sells while its network is down
        hq.clock.now += timedelta(hours=3)
        t2.net.mode = "partition"
        t2.sell(("C2", 4))
        r2 = await eod(t2)
        assert not r2.verified and r2.pending == 1
        assert any("did not finish" in x for x in r2.problems)

        t1.sell(("C3", 1))
        r1 = await eod(t1)
        assert r1.verified, r1.problems  # till-1 still checks out about itself
        assert r1.store.count == 3 and r1.hq_store is not None and r1.hq_store.count == 4
        text = "\n".join(report_lines(r1))
        assert "till-2: last synced 3 h ago" in text
        assert (
            "of the day include them: 4 sale(s)" in text
        )  # till-2's offline sale is not at HQ yet

        # HQ's report shows each till's latest end of day
        from hq import admin

        lines = {x.device_id: x for x in admin.report(hq.db) if x.store_id == "S1"}
        assert lines["till-1"].eod_verified is True
        # till-2's last word reached HQ before it went offline (verified), not after
        assert lines["till-2"].eod_verified is True

        # till-2 comes back: everything arrives, it verifies too
        t2.net.mode = "ok"
        r2 = await eod(t2)
        assert r2.verified, r2.problems
        assert r2.hq is not None and r2.hq.count == 2
    finally:
        await close(t1, t2)


async def test_a_movement_hq_quarantined_is_listed(hq: HQ, tills: tuple[Till, Till]) -> None:
    t1, t2 = tills
    try:
        assert (await t1.sync()).ok and (await t2.sync()).ok
        t1.sell(("C1", 1))
        at = t1.clock().isoformat()
        with t1.store.transaction() as conn:  # a receipt that names a SKU HQ never had
            stock.record(
                conn,
                [
                    stock.Movement("C2", 5, "receipt", at),
                    stock.Movement("GHOST", 1, "receipt", at),
                ],
            )
        t2.sell(("C2", 1))
        r1, r2 = await eod(t1), await eod(t2)
        assert r2.verified, r2.problems  # till-2 is not affected by till-1's trouble
        assert not r1.verified
        assert len(r1.rejected) == 1 and "unknown_sku" in r1.rejected[0].reason
        # the whole event was quarantined: both of its movements are missing at HQ
        assert {d.sku: (d.store, d.hq) for d in r1.stock_differences} == {
            "C2": (5, 0),
            "GHOST": (1, 0),
        }
        assert r1.sales_match
        text = "\n".join(report_lines(r1))
        assert "    C2: till 5, HQ 0" in text and "    GHOST: till 1, HQ 0" in text
        assert "This till's stock movements differ from HQ's for 2 SKU(s)." in text

        from hq import admin

        lines = {x.device_id: x for x in admin.report(hq.db) if x.store_id == "S1"}
        assert lines["till-1"].eod_verified is False and lines["till-1"].stock_mismatches == 2
        assert lines["till-2"].eod_verified is True
    finally:
        await close(t1, t2)


async def test_a_single_till_still_compares_on_hand_store_wide(hq: HQ, tmp_path: Path) -> None:
    t1 = make_till(hq, tmp_path, "S9", "till-1")
    try:
        assert (await t1.sync()).ok
        t1.sell(("C1", 2))
        r = await eod(t1)
        assert r.verified, r.problems
        assert r.other_tills == () and r.store_stock_checked == 1
        assert "On-hand     1 SKU(s) compared store-wide" in "\n".join(report_lines(r))
        assert r.hq_store == r.hq

        # HQ's on-hand moves without this till (a correction at HQ's side): the single
        # till's stronger check catches it although its own movements still agree
        from sqlalchemy import update

        from hq.db import stock_on_hand

        with hq.db.write() as conn:
            conn.execute(
                update(stock_on_hand)
                .where(stock_on_hand.c.store_id == "S9", stock_on_hand.c.sku == "C1")
                .values(on_hand=stock_on_hand.c.on_hand + 1)
            )
        r = await eod(t1)
        assert not r.verified and r.stock_differences == ()
        assert [(d.sku, d.store, d.hq) for d in r.store_stock_differences] == [("C1", -2, -1)]
    finally:
        await close(t1)


async def test_an_hq_without_the_per_till_question_gets_the_old_one(
    hq: HQ, tills: tuple[Till, Till]
) -> None:
    """A till updated before its HQ: HQ answers 404 to the new question, the till asks the
    store-wide one and says plainly why it cannot verify a store with two tills."""
    old_app = create_app(hq.db, clock=hq.clock)
    old_app.router.routes[:] = [
        r
        for r in old_app.router.routes
        if not (isinstance(r, Route) and r.path == p.DEVICE_RECONCILIATION_PATH)
    ]
    hq._asgi = httpx.ASGITransport(app=old_app)
    t1, t2 = tills
    try:
        assert (await t1.sync()).ok
        t1.sell(("C1", 1))
        r = await eod(t1)
        assert r.scope == "store" and not r.verified
        assert any("HQ answers only for the whole store (till-2 too)" in x for x in r.problems)
        assert r.hq is not None and r.hq.count == 1 and r.stock_differences == ()
    finally:
        await close(t1, t2)
