"""A till whose pull cursor is ahead of a restored HQ must not miss changes (SQLite and
PostgreSQL).

HQ is restored from a backup whose change log ends at head H; a till had already pulled up to
C > H. When HQ then writes past C before the till pulls again, the till's cursor C is a valid
number again, but the changes H+1..C are other changes than the ones it pulled: each page
carries an anchor (the id of the change at its cursor), the till sends it back, and HQ answers
a reset when the change at that seq is no longer the one the till saw."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, inspect, select

from hq import admin
from hq.changelog import ChangeWriter, anchor_at, compact
from hq.db import Database, metadata, utcnow
from sync import protocol as p
from tests.hq.support import T0, register, seed_catalog
from tests.hq.support import Till as HQTill
from tests.sync.support import HQ, Till, ean_of, make_till


def backup(db: Database, to: Database) -> None:
    """HQ's backup: every table's rows as they are now (an online copy)."""
    with db.read(snapshot=True) as src, to.write() as dst:
        for table in metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            dst.execute(delete(table))
            if rows:
                dst.execute(insert(table), rows)


def restore(db: Database, backup_db: Database) -> None:
    """HQ's disk is lost: every table gets the backup's rows back (the schema stays)."""
    with backup_db.read(snapshot=True) as src, db.write() as dst:
        for table in reversed(metadata.sorted_tables):
            dst.execute(delete(table))
        for table in metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            if rows:
                dst.execute(insert(table), rows)


def catalog_item(sku: str, name: str, price: int | None = None) -> admin.CatalogItem:
    return admin.CatalogItem(
        sku=sku, name=name, tax_rate_bp=1300, barcodes=(ean_of(sku),), price=price
    )


def real_till(db: Database, tmp_path: Path) -> Till:
    hq = HQ(tmp_path / "unused-hq-path", db)
    return make_till(hq, tmp_path, "S1", "till-1")


async def test_a_till_ahead_of_a_restored_hq_that_wrote_past_it_gets_a_reset(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    db = make_db()
    admin.upsert_catalog(db, [catalog_item(f"P{i}", f"品 {i}", 100 + i) for i in range(3)])
    till = real_till(db, tmp_path)
    try:
        assert (await till.sync()).ok
        saved = make_db("backup")
        backup(db, saved)
        # after the backup: changes the till pulls, then HQ loses them in the restore
        admin.set_price(db, "P0", 111)
        admin.upsert_catalog(db, [catalog_item("P1", "lost name")])
        assert (await till.sync()).ok
        assert till.catalogue()["P1"][0] == "lost name"
        ahead = till.cursors()

        restore(db, saved)
        # HQ writes again BEFORE the till pulls: as many changes per stream as it lost and
        # more, so the till's cursors are valid numbers again (at or below HQ's head)
        admin.set_price(db, "P2", 222)
        admin.set_price(db, "P2", 223)
        admin.upsert_catalog(db, [catalog_item("P2", "kept name")])
        admin.upsert_catalog(db, [catalog_item("P0", "new P0")])
        with db.read() as conn:
            from hq.changelog import heads

            h = heads(conn)
        assert ahead["catalog"] <= h["catalog"][0] and ahead["prices"] <= h["prices"][0]

        sold = till.sell(("P1", 2))  # the till's own data, pending in its outbox
        report = await till.sync()
        assert report.ok, report.error
        assert {"catalog", "prices"} <= set(report.snapshots)
        # the reset replaced HQ's streams only: the sale stayed and went to HQ
        assert till.pending() == 0 and till.q("SELECT count(*) FROM sales")[0][0] == 1
        assert HQ(Path("unused"), db).sale_ids("S1") == [sold.sale_id]
        assert till.catalogue() == hq_catalogue(db)
        assert till.catalogue()["P1"][0] == "品 1"  # the lost rename is gone
        assert till.catalogue()["P0"][1] == 100  # the lost price is gone
        assert till.catalogue()["P2"][:2] == ("kept name", 223)

        # after the reset the till follows HQ normally again, with no further snapshot
        admin.set_price(db, "P1", 999)
        report = await till.sync()
        assert report.ok and report.snapshots == {}
        assert till.catalogue() == hq_catalogue(db)
    finally:
        await till.aclose()


async def test_a_till_behind_a_restored_hq_is_served_without_a_reset(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    """Restoring HQ does not reset a till whose cursor is inside the restored history."""
    db = make_db()
    admin.upsert_catalog(db, [catalog_item(f"P{i}", f"品 {i}", 100 + i) for i in range(3)])
    till = real_till(db, tmp_path)
    try:
        assert (await till.sync()).ok
        admin.set_price(db, "P0", 150)
        saved = make_db("backup")
        backup(db, saved)
        admin.set_price(db, "P0", 160)  # lost in the restore, never pulled by the till
        restore(db, saved)
        admin.set_price(db, "P1", 170)
        report = await till.sync()
        assert report.ok and report.snapshots == {}
        assert till.catalogue() == hq_catalogue(db)
    finally:
        await till.aclose()


def hq_catalogue(db: Database) -> dict[str, tuple[str, int, int, tuple[str, ...]]]:
    return HQ(Path("unused"), db).catalogue()


# -- the protocol, request by request ------------------------------------------------------------


async def pull(
    client: httpx.AsyncClient,
    till: HQTill,
    cursors: dict[str, int],
    anchors: dict[str, str] | None = None,
    limit: int = 100,
) -> p.PullResponse:
    body: dict[str, Any] = {"device_time": T0.isoformat(), "cursors": cursors, "limit": limit}
    if anchors is not None:  # an older till sends no "anchors" at all
        body["anchors"] = anchors
    r = await client.post(p.PULL_PATH, json=body, headers=till.headers)
    assert r.status_code == 200, r.text
    return p.PullResponse.model_validate_json(r.content)


async def header_of(client: httpx.AsyncClient, till: HQTill, stream: str) -> p.SnapshotHeader:
    r = await client.get(f"{p.SNAPSHOT_PATH}/{stream}", headers=till.headers)
    assert r.status_code == 200, r.text
    header = p.parse_snapshot_line(r.text.splitlines()[0])
    assert isinstance(header, p.SnapshotHeader)
    return header


async def test_every_page_and_snapshot_names_the_change_at_its_cursor(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    res = await pull(client, till, {"catalog": 0})
    assert res.pages["catalog"].cursor == 0 and res.pages["catalog"].anchor is None  # type: ignore[index]
    seed_catalog(db, ["A", "B"])  # one transaction: seqs 1-2
    seed_catalog(db, ["C"])  # another: seq 3

    first = (await pull(client, till, {"catalog": 0}, limit=1)).pages["catalog"]  # type: ignore[index]
    assert first.cursor == 2 and first.has_more and first.anchor is not None
    rest = (await pull(client, till, {"catalog": 2}, {"catalog": first.anchor})).pages["catalog"]  # type: ignore[index]
    assert rest.reset is None and rest.cursor == 3 and rest.anchor not in (None, first.anchor)
    # an empty page keeps the cursor and its anchor
    same = (await pull(client, till, {"catalog": 3}, {"catalog": rest.anchor})).pages["catalog"]  # type: ignore[index]
    assert (
        same.reset is None and same.changes == [] and (same.cursor, same.anchor) == (3, rest.anchor)
    )
    # the snapshot's cursor comes with the same anchor as a page ending there
    header = await header_of(client, till, "catalog")
    assert (header.cursor, header.anchor) == (3, rest.anchor)
    # a cursor of 0 names no change: an anchor sent with it is not checked
    zero = (await pull(client, till, {"catalog": 0}, {"catalog": "0123456789abcdef"})).pages[
        "catalog"
    ]  # type: ignore[index]
    assert zero.reset is None and zero.cursor == 3


async def test_a_wrong_anchor_gets_a_history_changed_reset_and_no_anchor_is_not_checked(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A", "B"])
    res = await pull(client, till, {"catalog": 2, "prices": 2}, {"catalog": "0000000000000000"})
    page = res.pages["catalog"]  # type: ignore[index]
    assert page.changes == [] and page.cursor == 2 and page.anchor is None
    assert page.reset is not None and page.reset.reason == "history_changed"
    assert page.reset.reason in p.RESET_REASONS
    assert page.reset.snapshot_path == f"{p.SNAPSHOT_PATH}/catalog"
    assert res.pages["prices"].reset is None  # type: ignore[index]  # the other stream goes on
    # an older till sends no anchors: served as before, and it learns the anchor
    old = (await pull(client, till, {"catalog": 1})).pages["catalog"]  # type: ignore[index]
    assert old.reset is None and old.cursor == 2 and old.anchor is not None


async def test_a_cursor_left_at_the_horizon_by_compaction_is_still_checked(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A", "B"])
    page = (await pull(client, till, {"catalog": 0})).pages["catalog"]  # type: ignore[index]
    assert page.cursor == 2 and page.anchor is not None
    horizon = compact(db, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1))
    assert horizon["catalog"] == 2  # the change at the till's cursor is gone

    same = (await pull(client, till, {"catalog": 2}, {"catalog": page.anchor})).pages["catalog"]  # type: ignore[index]
    assert same.reset is None and same.anchor == page.anchor
    assert (await header_of(client, till, "catalog")).anchor == page.anchor
    wrong = (await pull(client, till, {"catalog": 2}, {"catalog": "0000000000000001"})).pages[
        "catalog"  # type: ignore[index]
    ]
    assert wrong.reset is not None and wrong.reset.reason == "history_changed"


async def test_an_orders_page_may_end_on_another_stores_change_and_is_checked_there(
    db: Database, client: httpx.AsyncClient, make_db: Callable[..., Database]
) -> None:
    """The orders stream is partitioned per store; a page's cursor can be the seq of a change
    of another store, and its anchor still names that change."""
    s1 = register(db, "S1")
    register(db, "S2", "till-9")

    def order_change(store_id: str, key: str) -> None:
        with db.write() as conn:
            writer = ChangeWriter(db, conn)
            writer.lock("orders")
            writer.upsert("orders", key, {"order_id": key}, store_id=store_id)
            writer.flush()

    order_change("S1", "O1")  # seq 1
    saved = make_db("backup")
    backup(db, saved)
    order_change("S2", "O2")  # seq 2: not S1's
    page = (await pull(client, s1, {"orders": 0})).pages["orders"]  # type: ignore[index]
    assert [c.key for c in page.changes] == ["O1"] and page.cursor == 2
    with db.read() as conn:
        assert page.anchor is not None and page.anchor == anchor_at(conn, "orders", 2)
    ok = (await pull(client, s1, {"orders": 2}, {"orders": page.anchor})).pages["orders"]  # type: ignore[index]
    assert ok.reset is None and ok.anchor == page.anchor

    # HQ restored to before seq 2, then another store's order takes seq 2 again
    restore(db, saved)
    order_change("S2", "O3")
    again = (await pull(client, s1, {"orders": 2}, {"orders": page.anchor})).pages["orders"]  # type: ignore[index]
    assert again.reset is not None and again.reset.reason == "history_changed"


async def test_an_hq_database_from_before_anchors_gets_the_columns_and_serves_without_them(
    make_db: Callable[..., Database],
) -> None:
    db = make_db()
    seed_catalog(db, ["A"])
    with db.write() as conn:  # the schema before anchors (its change has no id)
        conn.exec_driver_sql('ALTER TABLE "changes" DROP COLUMN "tx_uid"')
        conn.exec_driver_sql('ALTER TABLE "stream_heads" DROP COLUMN "compacted_uid"')

    db.create_schema()  # what `hq init` runs on an existing database: adds the columns
    with db.read() as conn:
        assert "tx_uid" in {c["name"] for c in inspect(conn).get_columns("changes")}
        assert "compacted_uid" in {c["name"] for c in inspect(conn).get_columns("stream_heads")}
        assert anchor_at(conn, "catalog", 1) is None  # the old change has no id
    seed_catalog(db, ["B"])
    with db.read() as conn:
        assert anchor_at(conn, "catalog", 2) is not None
