"""The till keeps each pull cursor with its anchor (the history it was taken on) and sends it
back; a store file from before anchors is migrated and learns them from its next page."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hq import admin
from pos.store.sync_state import SYNC_SCHEMA_VERSION, ensure_schema
from sync.protocol import PullRequest
from tests.sync.support import make_hq, make_till


async def test_cursors_are_stored_with_their_anchors_and_sent_back(tmp_path: Path) -> None:
    hq = make_hq(tmp_path)
    hq.seed(["A", "B"])
    till = make_till(hq, tmp_path)
    try:
        assert (await till.sync()).ok  # snapshots: cursors and anchors from their headers
        anchors = till.state.anchors(["catalog", "prices", "config", "orders"])
        assert anchors["catalog"] is not None and anchors["prices"] is not None
        assert anchors["config"] is None  # cursor 0: nothing written to that stream yet

        admin.set_price(hq.db, "A", 1234)
        assert (await till.sync()).ok  # a page moves the prices cursor and its anchor
        moved = till.state.anchors(["prices"])["prices"]
        assert moved is not None and moved != anchors["prices"]

        # HQ checks the anchor the till sends: a wrong one is a reset
        req = PullRequest(
            device_time=till.clock(),
            cursors={"prices": till.cursors()["prices"]},
            anchors={"prices": "not-this-history"},
        )
        page = (await till.engine.client.pull(req)).pages["prices"]  # type: ignore[index]
        assert page.reset is not None and page.reset.reason == "history_changed"
    finally:
        await till.aclose()


async def test_a_store_file_from_before_anchors_is_migrated_and_learns_them(
    tmp_path: Path,
) -> None:
    hq = make_hq(tmp_path)
    hq.seed(["A"])
    till = make_till(hq, tmp_path)
    assert (await till.sync()).ok
    cursors = till.cursors()
    await till.aclose()

    # the file as the version before anchors left it: no anchor column, sync schema 1
    conn = sqlite3.connect(till.path, isolation_level=None)
    conn.execute("ALTER TABLE sync_cursor DROP COLUMN anchor")
    conn.execute("UPDATE sync_meta SET value = '1' WHERE key = 'schema'")
    conn.close()

    till.open()
    try:
        ensure_schema(till.store.conn)  # already run by the engine's state; nothing left to do
        version = till.q("SELECT value FROM sync_meta WHERE key = 'schema'")[0][0]
        assert int(version) == SYNC_SCHEMA_VERSION
        assert till.cursors() == cursors  # the cursors were kept
        assert till.state.anchors(["catalog"]) == {"catalog": None}

        report = await till.sync()  # no anchor sent: served without a check, no snapshot
        assert report.ok and report.snapshots == {}
        assert till.state.anchors(["catalog"])["catalog"] is not None  # learnt, same cursor
        assert till.cursors() == cursors
    finally:
        await till.aclose()
