"""End of day per till at HQ (SQLite and PostgreSQL): HQ answers for the device its token names,
with that device's sales and the net stock movement of its applied events only; the old
store-wide question still gets the store-wide answer; `hq report` shows every till's latest
end of day."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner

from hq import admin
from hq.app import create_app
from hq.cli import cli
from hq.db import Database, utcnow
from sync import protocol as p
from tests.hq.support import Till, add_till, register, seed_catalog

DAY = "2026-11-22"


async def device_figures(
    client: httpx.AsyncClient, till: Till, **params: object
) -> p.DeviceReconciliationResponse:
    r = await client.get(
        p.DEVICE_RECONCILIATION_PATH,
        params={"business_day": DAY, **params},
        headers=till.headers,
    )
    assert r.status_code == 200, r.text
    return p.DeviceReconciliationResponse.model_validate_json(r.content)


async def two_tills_that_sold(db: Database, client: httpx.AsyncClient) -> tuple[Till, Till]:
    seed_catalog(db, ["A", "B", "C"])
    t1 = register(db, "S1", "till-1")
    t2 = add_till(db, "S1", "till-2")
    other = register(db, "S2", "till-1")  # another store: never in S1's figures
    await t1.push(
        client,
        [
            t1.sale([("A", 2, 1000)]),
            t1.sale([("B", 1, 500)], payments=[("card", 500)]),
            t1.movements([("A", 10), ("C", 4)]),
        ],
    )
    await t2.push(
        client,
        [
            t2.sale([("A", 1, 1000), ("C", 3, 200)], payments=[("wallet", 1600)]),
            t2.movements([("B", 7)]),
        ],
        pending=3,
    )
    await other.push(client, [other.sale([("A", 5, 1000)])])
    return t1, t2


async def test_each_till_gets_its_own_sales_and_stock_movements(
    db: Database, client: httpx.AsyncClient
) -> None:
    t1, t2 = await two_tills_that_sold(db, client)

    r1 = await device_figures(client, t1)
    assert (r1.store_id, r1.device_id, r1.last_applied_seq) == ("S1", "till-1", 3)
    assert (r1.sales.count, r1.sales.total) == (2, 2500)
    assert {m: (t.count, t.amount) for m, t in r1.sales.by_method.items()} == {
        "cash": (1, 2000),
        "card": (1, 500),
    }
    assert {m.sku: m.net for m in r1.movements} == {"A": 8, "B": -1, "C": 4}
    # the store's figures are both tills', for information
    assert (r1.store_sales.count, r1.store_sales.total) == (3, 4100)
    assert [(d.device_id, d.last_applied_seq) for d in r1.devices] == [
        ("till-1", 3),
        ("till-2", 2),
    ]
    till2 = r1.devices[1]
    assert till2.last_push_at is not None and till2.pending_reported == 1

    r2 = await device_figures(client, t2)
    assert r2.device_id == "till-2" and (r2.sales.count, r2.sales.total) == (1, 1600)
    assert {m.sku: m.net for m in r2.movements} == {"A": -1, "B": 7, "C": -3}

    # the old question (a till from before per-till end of day) still gets the store's answer
    r = await client.get(p.RECONCILIATION_PATH, params={"business_day": DAY}, headers=t1.headers)
    assert r.status_code == 200, r.text
    old = p.ReconciliationResponse.model_validate_json(r.content)
    assert (old.sales.count, old.sales.total) == (3, 4100)
    assert {o.sku: o.on_hand for o in old.on_hand} == {"A": 7, "B": 6, "C": 1}


async def test_quarantined_and_refused_movements_are_not_counted_for_the_till(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A", "B"])
    t1 = register(db, "S1", "till-1")
    res = await t1.push(
        client,
        [
            t1.movements([("A", 5)]),
            t1.movements([("B", 2), ("NOPE", 1)]),  # unknown SKU: the whole event is quarantined
            t1.sale([("A", 1, 1000)]),
        ],
    )
    assert [x.status for x in res.results] == ["applied", "rejected", "applied"]
    # the same event id again under a new seq: an idempotency mismatch, kept rejected; its
    # copy must not count the first event's movements twice
    first = t1.outbox[0]
    again = t1.event(first.type, first.payload, event_id=first.event_id)
    res = await t1.push(client, [again])
    assert res.results[0].status == "rejected"

    r = await device_figures(client, t1)
    assert {m.sku: m.net for m in r.movements} == {"A": 4}
    assert r.quarantined == 2 and r.last_applied_seq == 4


async def test_movements_come_in_pages(db: Database, client: httpx.AsyncClient) -> None:
    skus = [f"K{i:03d}" for i in range(7)]
    seed_catalog(db, skus)
    t1 = register(db, "S1", "till-1")
    await t1.push(client, [t1.movements([(s, i + 1) for i, s in enumerate(skus)])])
    seen: dict[str, int] = {}
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if after is not None:
            params["after"] = after
        page = await device_figures(client, t1, **params)
        pages += 1
        seen.update({m.sku: m.net for m in page.movements})
        after = page.next_after
        if after is None:
            break
    assert pages == 3 and seen == {s: i + 1 for i, s in enumerate(skus)}


async def test_the_device_is_the_tokens_and_a_bad_token_gets_nothing(
    db: Database, client: httpx.AsyncClient
) -> None:
    await two_tills_that_sold(db, client)
    r = await client.get(
        p.DEVICE_RECONCILIATION_PATH,
        params={"business_day": DAY, "device_id": "till-2", "store_id": "S2"},
        headers={"Authorization": "Bearer hqt_wrong"},
    )
    assert r.status_code == 401
    r = await client.get(p.DEVICE_RECONCILIATION_PATH, params={"business_day": "22/11/2026"})
    assert r.status_code in (401, 422)


async def test_hq_report_shows_the_latest_end_of_day_of_every_till(
    db: Database, client: httpx.AsyncClient
) -> None:
    t1, t2 = await two_tills_that_sold(db, client)

    async def send(till: Till, **kw: object) -> None:
        body = p.EodReport(business_day=DAY, device_time=utcnow(), **kw).to_dict()  # type: ignore[arg-type]
        r = await client.post(p.RECONCILIATION_PATH, json=body, headers=till.headers)
        assert r.status_code == 200, r.text

    await send(t1, verified=False, stock_mismatches=1, scope="device")
    await send(t2, verified=False, pending_events=4, scope="device")
    await send(t1, verified=True, scope="device")  # the later one wins
    lines = {(x.store_id, x.device_id): x for x in admin.report(db)}
    assert lines["S1", "till-1"].eod_verified is True
    assert lines["S1", "till-1"].stock_mismatches == 0
    assert lines["S1", "till-2"].eod_verified is False
    assert lines["S1", "till-2"].eod_pending == 4
    assert lines["S2", "till-1"].eod_day is None

    # an old till's report (no scope) is still taken
    old = {"business_day": DAY, "device_time": utcnow().isoformat(), "verified": True}
    r = await client.post(p.RECONCILIATION_PATH, json=old, headers=t2.headers)
    assert r.status_code == 200, r.text
    assert {x.device_id: x.eod_verified for x in admin.report(db) if x.store_id == "S1"} == {
        "till-1": True,
        "till-2": True,
    }


@pytest.fixture
def target(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[list[str], Database]]:
    """The --db / --dsn option for the backend, and the Database behind it."""
    if backend == "sqlite":
        path = tmp_path / "hq.db"
        db = Database(str(path))
        db.create_schema()
        yield ["--db", str(path)], db
        db.dispose()
        return
    from tests.hq.conftest import _drop_pg_schema, _pg_schema

    dsn = request.getfixturevalue("pg_dsn")
    schema = _pg_schema(dsn)
    sep = "&" if "?" in dsn else "?"
    scoped = f"{dsn}{sep}options={quote(f'-csearch_path={schema}')}"
    db = Database(scoped)
    db.create_schema()
    yield ["--dsn", scoped], db
    db.dispose()
    _drop_pg_schema(dsn, schema)


async def test_hq_report_command_prints_each_tills_end_of_day(
    target: tuple[list[str], Database],
) -> None:
    option, db = target
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db)), base_url="http://hq.test"
    ) as client:
        t1, t2 = await two_tills_that_sold(db, client)
        sent: list[tuple[Till, dict[str, Any]]] = [
            (t1, {"verified": True}),
            (t2, {"verified": False, "stock_mismatches": 2}),
        ]
        for till, kw in sent:
            body = p.EodReport(business_day=DAY, device_time=utcnow(), **kw).to_dict()
            r = await client.post(p.RECONCILIATION_PATH, json=body, headers=till.headers)
            assert r.status_code == 200, r.text

    result = CliRunner().invoke(cli, [*option, "report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {
        tuple(line.split()[:2]): line for line in result.output.splitlines() if line.startswith("S")
    }
    assert rows["S1", "till-1"].rstrip().endswith(f"{DAY} verified")
    assert f"{DAY} NOT verified (2 stock diff)" in rows["S1", "till-2"]
    assert rows["S2", "till-1"].rstrip().endswith("none yet")
