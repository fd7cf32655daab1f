"""Pull: pages in commit order that end on transaction boundaries, resets after retention,
snapshots of one stream (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from hq import admin
from hq.changelog import compact
from hq.db import Database, sync_log, utcnow
from sync import protocol as p
from tests.hq.support import Till, register, seed_catalog


async def pull_all(
    client: httpx.AsyncClient, till: Till, stream: str, cursor: int, limit: int
) -> tuple[list[p.StreamPage], int]:
    pages = []
    while True:
        res = await till.pull(client, {stream: cursor}, limit=limit)
        page = res.pages[stream]  # type: ignore[index]
        assert page.reset is None
        pages.append(page)
        cursor = page.cursor
        if not page.has_more:
            return pages, cursor


async def snapshot(
    client: httpx.AsyncClient, till: Till, stream: str, after: str | None = None
) -> tuple[p.SnapshotHeader, list[p.SnapshotRow], p.SnapshotEnd]:
    params = {"after": after} if after is not None else {}
    r = await client.get(f"{p.SNAPSHOT_PATH}/{stream}", params=params, headers=till.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(p.SNAPSHOT_MEDIA_TYPE)
    lines = r.text.splitlines()
    header = p.parse_snapshot_line(lines[0])
    end = p.parse_snapshot_line(lines[-1])
    rows = [p.parse_snapshot_line(line) for line in lines[1:-1]]
    assert isinstance(header, p.SnapshotHeader) and isinstance(end, p.SnapshotEnd)
    assert all(isinstance(row, p.SnapshotRow) for row in rows)
    assert end.rows == len(rows)
    return header, rows, end  # type: ignore[return-value]


def apply(state: dict[str, Any], changes: list[p.Change]) -> None:
    for c in changes:
        if c.op == "upsert":
            state[c.key] = c.row
        else:
            state.pop(c.key, None)


async def test_pages_follow_cursors_and_never_split_a_transaction(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, [f"A{i:02d}" for i in range(7)])  # one transaction of 7 changes
    seed_catalog(db, ["B1", "B2"])  # and one of 2
    admin.set_price(db, "A00", 4321)

    pages, cursor = await pull_all(client, till, "catalog", 0, limit=3)

    # a limit of 3 still returns the whole first transaction
    assert [len(pg.changes) for pg in pages] == [7, 2]
    assert pages[0].has_more and not pages[1].has_more
    for pg in pages:
        assert len({c.tx for c in pg.changes}) == 1
    seqs = [c.seq for pg in pages for c in pg.changes]
    assert seqs == list(range(1, 10)) and cursor == 9
    row = p.CatalogRow.model_validate(pages[0].changes[0].row)
    assert row.name == "商品 A00" and row.barcodes == ["code-A00"]

    prices, _ = await pull_all(client, till, "prices", 0, limit=100)
    state: dict[str, Any] = {}
    apply(state, [c for pg in prices for c in pg.changes])
    assert state["A00"]["price"] == 4321 and len(state) == 9

    # nothing new: the same cursor comes back, with no changes
    res = await till.pull(client, {"catalog": cursor})
    assert res.pages["catalog"].changes == [] and res.pages["catalog"].cursor == cursor  # type: ignore[index]
    assert not res.has_more


async def test_a_retired_product_arrives_as_a_delete(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A", "B"])
    admin.deactivate_products(db, ["A"])
    pages, _ = await pull_all(client, till, "catalog", 0, limit=100)
    state: dict[str, Any] = {}
    apply(state, [c for pg in pages for c in pg.changes])
    assert set(state) == {"B"}
    _, rows, _ = await snapshot(client, till, "catalog")
    assert [r.key for r in rows] == ["B"]


async def test_an_old_cursor_gets_a_reset_to_that_streams_snapshot(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A", "B", "C"])
    await till.pull(client, {"config": 0})  # one request in the sync log
    horizon = compact(db, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1))
    assert horizon["catalog"] == 3
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(sync_log)).scalar_one() == 0
    seed_catalog(db, ["D"])

    res = await till.pull(client, {"catalog": 0, "config": 0})

    page = res.pages["catalog"]  # type: ignore[index]
    assert page.changes == [] and page.reset is not None
    assert page.reset.snapshot_path == f"{p.SNAPSHOT_PATH}/catalog" and page.reset.horizon == 3
    assert res.pages["config"].reset is None  # type: ignore[index]  # the other stream goes on

    header, rows, _ = await snapshot(client, till, "catalog")
    assert header.cursor == 4 and [r.key for r in rows] == ["A", "B", "C", "D"]
    assert p.CatalogRow.model_validate(rows[0].row).barcodes == ["code-A"]
    # from the snapshot's cursor the pull goes on normally
    res = await till.pull(client, {"catalog": header.cursor})
    assert res.pages["catalog"].reset is None and res.pages["catalog"].cursor == 4  # type: ignore[index]


async def test_a_cursor_ahead_of_hq_gets_a_reset(db: Database, client: httpx.AsyncClient) -> None:
    # HQ restored from a backup older than what the store already pulled
    till = register(db, "S1")
    seed_catalog(db, ["A"])
    res = await till.pull(client, {"catalog": 50})
    page = res.pages["catalog"]  # type: ignore[index]
    assert page.reset is not None and page.reset.reason == "cursor_ahead_of_hq"


async def test_snapshot_equals_replaying_the_log_and_resumes_after_a_key(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, [f"K{i:03d}" for i in range(50)])
    admin.set_price(db, "K007", 1)
    admin.deactivate_products(db, ["K010"])

    header, rows, _ = await snapshot(client, till, "catalog")
    pages, cursor = await pull_all(client, till, "catalog", 0, limit=1000)
    state: dict[str, Any] = {}
    apply(state, [c for pg in pages for c in pg.changes])
    assert header.cursor == cursor
    assert {r.key: r.row for r in rows} == state

    _, rest, _ = await snapshot(client, till, "catalog", after="K039")
    assert [r.key for r in rest] == [f"K{i:03d}" for i in range(40, 50)]

    _, price_rows, _ = await snapshot(client, till, "prices")
    assert {r.key: r.row["price"] for r in price_rows}["K007"] == 1


async def test_staff_reach_only_their_own_store(db: Database, client: httpx.AsyncClient) -> None:
    s1 = register(db, "S1")
    s2 = register(db, "S2", "till-9")
    admin.add_staff(db, "g1", name="王芳", store_id="S1")
    admin.add_staff(db, "g2", name="Li Lei", store_id="S2")
    admin.add_staff(db, "boss", name="区域经理", role="manager")  # chain-wide
    admin.set_config(db, "receipt.footer", "谢谢惠顾")

    keys = {}
    for till in (s1, s2):
        pages, _ = await pull_all(client, till, "config", 0, limit=100)
        state: dict[str, Any] = {}
        apply(state, [c for pg in pages for c in pg.changes])
        keys[till.store_id] = state
        _, rows, _ = await snapshot(client, till, "config")
        assert {r.key: r.row for r in rows} == state
    assert set(keys["S1"]) == {"staff:g1", "staff:boss", "receipt.footer"}
    assert set(keys["S2"]) == {"staff:g2", "staff:boss", "receipt.footer"}
    assert keys["S1"]["staff:g1"]["value"]["name"] == "王芳"
    assert p.ConfigRow.model_validate(keys["S1"]["receipt.footer"]).value == "谢谢惠顾"


async def test_snapshot_of_an_unknown_stream_is_a_404(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    r = await client.get(f"{p.SNAPSHOT_PATH}/orderz", headers=till.headers)
    assert r.status_code == 404
    assert json.loads(r.text)["error"]["code"] == "not_found"


async def test_status_tells_the_device_where_hq_stands(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A"])
    r = await client.get(p.STATUS_PATH, headers=till.headers)
    st = p.DeviceStatus.model_validate_json(r.content)
    assert st.last_applied_seq == 0 and st.heads["catalog"] == 1 and st.heads["prices"] == 1
    assert st.store_id == "S1" and st.device_id == "till-1"
