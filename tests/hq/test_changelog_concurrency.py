"""Two writers on PostgreSQL: a change that commits late is never skipped by a cursor.

Writer A opens a catalogue transaction and holds it; writer B starts another one. With
numbers handed out by a sequence, B could commit seq 2 while A still holds seq 1, a store would
pull cursor 2 and never see A's change. With the stream lock B waits for A, so the seqs follow
the commits."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import text

from hq import admin
from hq.changelog import ChangeWriter, heads, pull_page
from hq.db import Database, database_url, products

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db(pg_dsn: str):  # type: ignore[no-untyped-def]
    from tests.hq.conftest import _drop_pg_schema, _pg_schema

    schema = _pg_schema(pg_dsn)
    db = Database(database_url(pg_dsn), pg_schema=schema, pool_size=4)
    db.create_schema()
    yield db, schema
    db.dispose()
    _drop_pg_schema(pg_dsn, schema)


def _blocked_by(db: Database, pid: int) -> bool:
    """Is some session waiting for a lock that backend ``pid`` holds? (A new transaction per
    call: pg_stat_activity is frozen within one.)"""
    with db.read() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        ).scalar_one()
    return bool(n)


def test_a_late_commit_is_never_skipped(pg_db) -> None:  # type: ignore[no-untyped-def]
    db, _ = pg_db
    admin.add_store(db, "S1", name="S1")
    a_wrote = threading.Event()
    a_pid: list[int] = []
    a_may_commit = threading.Event()
    b_done = threading.Event()

    def writer_a() -> None:
        with db.write() as conn:
            w = ChangeWriter(db, conn)
            w.lock("catalog")
            row = {"sku": "A", "name": "A", "tax_rate_bp": 0, "barcodes": [], "active": True}
            conn.execute(
                products.insert().values(
                    sku="A", name="A", tax_rate_bp=0, active=True, row=json.dumps(row)
                )
            )
            w.upsert("catalog", "A", row)
            w.flush()
            a_pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            a_wrote.set()
            a_may_commit.wait(60)

    def writer_b() -> None:
        admin.upsert_catalog(db, [admin.CatalogItem(sku="B", name="B", tax_rate_bp=0)])
        b_done.set()

    ta = threading.Thread(target=writer_a)
    ta.start()
    assert a_wrote.wait(60)
    tb = threading.Thread(target=writer_b)
    tb.start()
    for _ in range(3000):  # until B is seen blocked on the stream lock
        if _blocked_by(db, a_pid[0]):
            break
        time.sleep(0.01)
    assert _blocked_by(db, a_pid[0]) and not b_done.is_set()

    # a store pulling now sees neither change and keeps cursor 0
    with db.read(snapshot=True) as conn:
        page = pull_page(conn, "catalog", 0, 100, "S1")
    assert page.changes == [] and page.cursor == 0

    a_may_commit.set()
    ta.join(60)
    tb.join(60)
    assert b_done.is_set()

    with db.read(snapshot=True) as conn:
        page = pull_page(conn, "catalog", 0, 100, "S1")
        assert heads(conn)["catalog"][0] == 2
    assert [(c.seq, c.key) for c in page.changes] == [(1, "A"), (2, "B")]


def test_many_concurrent_writers_leave_a_gap_free_log(pg_db) -> None:  # type: ignore[no-untyped-def]
    db, _ = pg_db
    admin.add_store(db, "S1", name="S1")
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        cursor = 0
        while not stop.is_set() or cursor < 40:
            with db.read(snapshot=True) as conn:
                page = pull_page(conn, "catalog", cursor, 7, "S1")
            seen.extend(c.seq for c in page.changes)
            cursor = page.cursor
            if stop.is_set() and not page.has_more and cursor >= 40:
                break

    def writer(n: int) -> None:
        for i in range(10):
            admin.upsert_catalog(db, [admin.CatalogItem(sku=f"W{n}-{i}", name="x", tax_rate_bp=0)])

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    r.join(120)
    # the reader, pulling while four writers committed, saw every seq exactly once, in order
    assert seen == list(range(1, 41))
