"""The engine under a failing network and a failing HQ: nothing lost, nothing doubled, nothing
blocked, and every fault healed by the next round."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hq import admin
from hq.changelog import compact
from hq.db import utcnow
from pos.store import outbox
from sync.client import RetryPolicy
from tests.sync.support import HQ, Till, half_written_sales, make_hq, make_till

SKUS = [f"A{i}" for i in range(6)]


@pytest.fixture
def hq(tmp_path: Path) -> HQ:
    hq = make_hq(tmp_path)
    hq.seed(SKUS, price=500)
    return hq


async def ready_till(hq: HQ, tmp_path: Path, **kw: object) -> Till:
    till = make_till(hq, tmp_path, **kw)  # type: ignore[arg-type]
    assert (await till.sync()).ok
    return till


def assert_exactly_once(hq: HQ, till: Till) -> None:
    """Every receipt the till showed is at HQ once, HQ's seqs are 1..n, stock agrees."""
    assert sorted(hq.sale_ids(till.store_id)) == sorted(till.sales)
    seqs = [s for s, _, _ in hq.event_seqs(till.store_id, till.device_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert hq.on_hand(till.store_id) == till.on_hand() == hq.ledger_sums(till.store_id)
    assert till.pending() == 0
    assert half_written_sales(till.path) == []


async def test_every_push_sent_twice_is_applied_once(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    till.net.mode = "duplicate"
    for i in range(7):
        till.sell((SKUS[i % 3], 1 + i))
        if i % 2:
            assert (await till.sync()).ok
    assert (await till.sync()).ok
    assert_exactly_once(hq, till)
    assert hq.quarantined("S1") == 0
    await till.aclose()


async def test_an_answer_lost_after_hq_committed_makes_no_duplicate(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    receipts = [till.sell(("A1", 1)) for _ in range(3)]
    # pull goes through, then the push is applied by HQ but its answer never arrives
    till.net.fail_next("ok", "drop_response")

    lost = await till.sync()

    assert not lost.ok and "cannot be reached" in (lost.error or "")
    assert sorted(hq.sale_ids("S1")) == sorted(r.sale_id for r in receipts)  # HQ has them
    assert till.pending() == 3  # the till does not know yet
    healed = await till.sync()
    assert healed.ok and healed.acked == 3
    assert_exactly_once(hq, till)
    await till.aclose()


async def test_a_dropped_request_is_counted_and_retried_later(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    till.sell(("A2", 2))
    till.net.fail_next("ok", "drop_request")

    failed = await till.sync()

    assert not failed.ok and failed.pending == 1
    (row,) = till.q("SELECT attempts, next_attempt_at FROM outbox WHERE state = 'pending'")
    assert row[0] == 1 and row[1] is not None
    status = till.engine.status()
    assert not status.online and status.pending == 1 and status.last_error
    assert (await till.sync()).ok
    assert till.engine.status().online
    assert_exactly_once(hq, till)
    await till.aclose()


async def test_a_busy_hq_is_retried_with_backoff_inside_the_round(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path, retry=RetryPolicy(attempts=3))
    till.sell(("A3", 1))
    till.net.fail_next("ok", "unavailable", "unavailable")  # 503 twice, then through

    report = await till.sync()

    assert report.ok and report.acked == 1
    assert [f for _, path, f in till.net.log[-3:] if path.endswith("/push")] == [
        "unavailable",
        "unavailable",
        "ok",
    ]
    assert_exactly_once(hq, till)
    await till.aclose()


async def test_a_refused_event_never_blocks_the_ones_after_it(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    till.sell(("A1", 1))
    with till.store.transaction() as conn:  # an event HQ cannot apply (a bug, bad data...)
        bad_seq, _ = outbox.append(conn, "stock.counted", {"sku": "A1", "counted": 3}, till.clock())
    till.sell(("A2", 1))
    till.sell(("A3", 1))

    report = await till.sync()

    assert report.ok and report.acked == 3 and report.rejected == 1 and report.pending == 0
    (refused,) = till.state.rejected()
    assert refused.seq == bad_seq and refused.reason.startswith("unsupported_event_type")
    assert till.engine.status().rejected == 1
    assert hq.quarantined("S1") == 1
    assert sorted(hq.sale_ids("S1")) == sorted(till.sales)
    assert hq.on_hand("S1") == till.on_hand()
    await till.aclose()


async def test_hq_restored_from_a_backup_gets_the_lost_events_again(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    for _ in range(3):
        till.sell(("A1", 1))
    assert (await till.sync()).acked == 3
    hq.backup(tmp_path / "nightly.db")
    for _ in range(4):
        till.sell(("A2", 1))
    till.sell(("A3", 5))
    assert (await till.sync()).acked == 5
    assert len(hq.sale_ids("S1")) == 8

    hq.restore(tmp_path / "nightly.db")  # HQ lost its last five events
    assert hq.last_applied("S1", "till-1") == 3 and len(hq.sale_ids("S1")) == 3

    report = await till.sync()

    assert report.ok and report.rewound == 5 and report.acked == 5
    assert_exactly_once(hq, till)
    await till.aclose()


async def test_a_reset_replaces_the_catalogue_and_keeps_the_outbox(hq: HQ, tmp_path: Path) -> None:
    till = await ready_till(hq, tmp_path)
    till.sell(("A1", 1))
    assert (await till.sync()).ok
    before = till.cursors()

    till.net.mode = "partition"  # the till goes offline and keeps selling
    offline = [till.sell(("A2", 1)), till.sell(("A4", 2))]
    assert not (await till.sync()).ok

    # meanwhile HQ changes a lot and then drops the change log the till would need
    admin.set_price(hq.db, "A2", 777)
    admin.deactivate_products(hq.db, ["A5"])
    hq.seed(["N1", "N2"], price=120)
    horizon = compact(hq.db, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1))
    assert horizon["catalog"] > before["catalog"]

    till.net.mode = "ok"
    report = await till.sync()

    assert report.ok and set(report.snapshots) == {"catalog", "prices"}
    assert till.catalogue() == hq.catalogue()
    assert "A5" not in till.catalogue() and till.catalogue()["A2"][1] == 777
    # the store's own data survived the reset, and the offline sales reached HQ
    assert len(till.q("SELECT * FROM outbox")) == 3
    assert {r.sale_id for r in offline} <= set(hq.sale_ids("S1"))
    assert_exactly_once(hq, till)
    await till.aclose()


async def test_a_cut_snapshot_download_resumes_where_it_stopped(hq: HQ, tmp_path: Path) -> None:
    hq.seed([f"B{i:03d}" for i in range(300)], price=990)
    till = make_till(hq, tmp_path, retry=RetryPolicy(attempts=3))
    till.net.fail_next("cut_stream", "cut_stream")  # both snapshot bodies end half way

    report = await till.sync()

    assert report.ok, report.error
    gets = [(url, f) for method, url, f in till.net.log if method == "GET"]
    assert [f for _, f in gets].count("cut_stream") == 2
    resumed = [url for url, f in gets if f == "ok" and "after=" in url]
    assert {u.split("?")[0].rsplit("/", 1)[1] for u in resumed} == {"catalog", "prices"}
    assert till.catalogue() == hq.catalogue() and len(till.catalogue()) == 306
    await till.aclose()


async def test_an_interrupted_catalogue_load_starts_again_from_the_downloaded_file(
    hq: HQ, tmp_path: Path
) -> None:
    till = make_till(hq, tmp_path)

    def power_cut(stream: str, phase: str, rows: int) -> None:
        if phase == "load":
            raise KeyboardInterrupt  # the program dies in the middle of the load

    till.engine.on_snapshot_progress = power_cut
    with pytest.raises(KeyboardInterrupt):
        await till.sync()
    assert till.catalogue() == {} and till.cursors() == {}  # nothing half-loaded

    till.reopen()
    seen = len(till.net.log)
    report = await till.sync()

    assert report.ok and till.catalogue() == hq.catalogue()
    assert not [url for _, url, _ in till.net.log[seen:] if "snapshot" in url]  # not again
    assert not any(till.state.spool_dir.glob("*.ndjson"))  # and cleaned up once loaded
    await till.aclose()


async def test_hq_restored_behind_the_tills_cursor_is_followed_by_a_reset(
    hq: HQ, tmp_path: Path
) -> None:
    till = await ready_till(hq, tmp_path)
    hq.backup(tmp_path / "old.db")
    admin.set_price(hq.db, "A0", 4242)
    assert (await till.sync()).ok
    assert till.catalogue()["A0"][1] == 4242

    hq.restore(tmp_path / "old.db")  # HQ goes back to before that price change

    report = await till.sync()

    assert report.ok and report.snapshots.keys() == {"prices"}
    assert till.catalogue() == hq.catalogue() and till.catalogue()["A0"][1] == 500
    await till.aclose()


async def test_the_final_state_does_not_depend_on_the_tills_clock(tmp_path: Path) -> None:
    """The same day with the till's clock right, a day behind and a day ahead: HQ ends with
    the same stock, the same money and the same events; only the dates the till wrote on its
    receipts differ. Nothing is ordered by the clock."""
    outcomes = []
    for n, skew in enumerate((timedelta(0), timedelta(hours=-24), timedelta(hours=26))):
        where = tmp_path / f"run{n}"
        where.mkdir()
        hq = make_hq(where)
        hq.seed(SKUS, price=500)
        till = make_till(hq, where, skew=skew)
        assert (await till.sync()).ok
        till.sell(("A1", 2), ("A2", 1))
        till.net.fail_next("ok", "drop_response")  # a lost answer in the middle
        assert not (await till.sync()).ok
        admin.set_price(hq.db, "A1", 650)
        assert (await till.sync()).ok
        till.sell(("A1", 1), pay="wallet")
        till.sell(("A3", 4), pay="card")
        assert (await till.sync()).ok
        assert_exactly_once(hq, till)
        outcomes.append(
            (
                hq.on_hand("S1"),
                hq.payments_total("S1"),
                [(s, st) for s, _, st in hq.event_seqs("S1", "till-1")],
                till.catalogue(),
            )
        )
        await till.aclose()
    assert outcomes[0] == outcomes[1] == outcomes[2]


async def test_a_power_cut_that_undoes_syncs_own_commits_is_healed_by_the_next_round(
    hq: HQ, tmp_path: Path
) -> None:
    """The engine commits its bookkeeping (HQ's answers, pulled pages with their cursors) with
    synchronous=NORMAL: a power cut may undo what it wrote after the till's last commit (which
    is FULL, and makes everything before it durable). Worst case, all of it: the file is back
    as the last sale left it. The next round pushes those events again (HQ answers
    "duplicate") and pulls the pages again; nothing is lost or doubled."""
    till = await ready_till(hq, tmp_path)
    receipts = [till.sell(("A1", 1)) for _ in range(3)]
    durable = tmp_path / "as-the-last-sale-left-it.db"
    copy = sqlite3.connect(durable)
    try:
        till.store.conn.backup(copy)
    finally:
        copy.close()
    admin.set_price(hq.db, "A2", 777)
    synced = await till.sync()
    assert synced.ok and synced.acked == 3 and till.catalogue()["A2"][1] == 777

    till.store.close()  # the power cut
    for suffix in ("-wal", "-shm"):
        Path(f"{till.path}{suffix}").unlink(missing_ok=True)
    shutil.copy(durable, till.path)
    till.open()
    assert till.pending() == 3 and till.catalogue()["A2"][1] == 500  # undone

    healed = await till.sync()

    assert healed.ok and healed.acked == 3 and healed.pulled >= 1
    assert [s for _, _, s in hq.event_seqs("S1", "till-1")] == ["applied"] * 3
    assert sorted(hq.sale_ids("S1")) == sorted(r.sale_id for r in receipts)
    assert till.catalogue() == hq.catalogue()
    assert_exactly_once(hq, till)
    await till.aclose()
