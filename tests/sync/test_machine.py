"""A Hypothesis state machine over real parts: three tills (two stores, one with two tills), each
a real SQLite file run by the production engine, one real HQ (its app over a SQLite file), and
between them a network that drops requests, cuts answers after HQ committed, sends requests
twice, delays them, answers 503 and partitions. Tills crash (an open transaction is lost and the
file reopened) and their clocks are skewed by up to a day; HQ changes its catalogue, compacts
its change log (tills behind get resets) and is restored from a backup, after which it writes
again: a till whose cursor was past the backup's head must get a reset even once HQ's new
changes have numbers up to and beyond that cursor (each cursor carries the anchor of the change
it names, and HQ checks it).

After every step the invariants of DESIGN.md that must hold at all times are checked; at the
end the faults stop, every till syncs until nothing is pending, and the rest are checked:
nothing lost, nothing doubled, stock conserved, HQ-owned data equal, outbox drained.

Runs ``SYNC_MACHINE_EXAMPLES`` examples (default 40) of up to ``SYNC_MACHINE_STEPS`` steps
(default 30): about a minute. Raise them for a longer hunt."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from hq import admin
from hq.changelog import anchor_at, compact, heads
from hq.db import config as hq_config_table
from hq.db import utcnow
from pos.store import outbox
from sync.errors import SyncError
from tests.sync.faults import FAULTS, Fault
from tests.sync.support import HQ, Till, half_written_sales, make_hq, make_till

SKUS = [f"P{i}" for i in range(6)]
TILLS = (("S1", "till-1"), ("S1", "till-2"), ("S2", "till-1"))
EXAMPLES = int(os.environ.get("SYNC_MACHINE_EXAMPLES", "40"))
STEPS = int(os.environ.get("SYNC_MACHINE_STEPS", "30"))

till_ix = st.integers(0, len(TILLS) - 1)
skus = st.sampled_from(SKUS)


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sync-machine-"))
        self.loop = asyncio.new_event_loop()
        self.hq: HQ = make_hq(self.dir)
        self.hq.seed(SKUS, price=300)
        admin.set_config(self.hq.db, "receipt.footer", "welcome")
        self.tills: list[Till] = [make_till(self.hq, self.dir, s, d) for s, d in TILLS]
        self.poison = [0] * len(TILLS)
        self.backup: Path | None = None
        self.unacked_restore: set[int] = set()  # tills whose acks HQ may have lost
        self.history: dict[tuple[int, int], dict[str, Any]] = {}
        self.last_cursors: list[dict[str, int]] = [{} for _ in TILLS]
        self.last_applied = {t: 0 for t in TILLS}
        self.sold: list[set[str]] = [set() for _ in TILLS]
        self.record_hq_state()

    # -- helpers -------------------------------------------------------------------------------

    def on_hq_history(self, till: Till) -> bool:
        """Every cursor of the till names a change HQ has now (its anchor matches): HQ would
        serve it without a reset. False for a till still holding changes a restore lost."""
        anchors = till.state.anchors(till.cursors())
        with self.hq.db.read() as conn:
            for stream, cursor in till.cursors().items():
                head, horizon = heads(conn)[stream]
                if cursor > head or cursor < horizon:
                    return False
                if (
                    anchors[stream] is not None
                    and anchor_at(conn, stream, cursor) != anchors[stream]
                ):
                    return False
        return True

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def heads(self) -> dict[str, tuple[int, int]]:
        with self.hq.db.read() as conn:
            return heads(conn)

    def record_hq_state(self) -> None:
        h = self.heads()
        self.history[(h["catalog"][0], h["prices"][0])] = self.hq.catalogue()

    def hq_config(self) -> dict[str, Any]:
        return {r.key: json.loads(r.value) for r in self.hq.rows(select(hq_config_table))}

    def sync(self, i: int) -> None:
        till = self.tills[i]
        before = till.cursors()
        report = self.run(till.sync())
        self.after_pull(i, before, set(report.snapshots))
        if report.ok:
            self.unacked_restore.discard(i)
            # a whole pull leaves no cursor on a history HQ lost in a restore
            assert self.on_hq_history(till)

    def after_pull(self, i: int, before: dict[str, int], snapshots: set[str]) -> None:
        till = self.tills[i]
        now = till.cursors()
        for stream, cursor in now.items():
            if stream in before and cursor < before[stream]:
                assert stream in snapshots, f"{stream} cursor went back without a reset"

    # -- till actions --------------------------------------------------------------------------

    @rule(i=till_ix, sku=skus, qty=st.integers(1, 4), other=skus)
    def sell(self, i: int, sku: str, qty: int, other: str) -> None:
        till = self.tills[i]
        if till.service.lookup(sku) is None:
            return  # retired at HQ and already gone from this till: cannot be scanned
        items = [(sku, qty)]
        if other != sku and till.service.lookup(other) is not None:
            items.append((other, 1))
        receipt = till.sell(*items)
        self.sold[i].add(receipt.sale_id)

    @rule(i=till_ix, sku=skus, delta=st.integers(-3, 20))
    def move_stock(self, i: int, sku: str, delta: int) -> None:
        """A movement recorded without an event (an import's initial stock, ...)."""
        from pos.store import stock

        if delta == 0:
            return
        till = self.tills[i]
        with till.store.transaction() as conn:
            stock.record(conn, [stock.Movement(sku, delta, "initial", till.clock().isoformat())])

    @rule(i=till_ix)
    def poison_event(self, i: int) -> None:
        till = self.tills[i]
        with till.store.transaction() as conn:
            outbox.append(conn, "stock.counted", {"sku": "P0", "counted": 1}, till.clock())
        self.poison[i] += 1

    @rule(i=till_ix, abandon=st.booleans())
    def crash(self, i: int, abandon: bool) -> None:
        """The till program dies, maybe in the middle of writing a sale, and starts again."""
        till = self.tills[i]
        if abandon:
            conn = till.store.conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO sales (sale_id, sale_no, short_id, business_day, completed_at,"
                " total, tax_total, currency, event_id) VALUES ('lost', 999999, 'X',"
                " '2026-01-01', '2026-01-01T00:00:00+08:00', 1, 0, 'CNY', 'none')"
            )
        self.run(till.engine.client.http.aclose())
        till.reopen()

    @rule(i=till_ix, hours=st.integers(-24, 24))
    def skew_clock(self, i: int, hours: int) -> None:
        self.tills[i].clock.skew = timedelta(hours=hours)

    # -- sync steps ----------------------------------------------------------------------------

    @rule(i=till_ix)
    def sync_round(self, i: int) -> None:
        self.sync(i)

    @rule(i=till_ix)
    def push_only(self, i: int) -> None:
        with contextlib.suppress(SyncError):
            self.run(self.tills[i].engine.push())

    @rule(i=till_ix)
    def pull_only(self, i: int) -> None:
        from sync.engine import SyncReport

        till = self.tills[i]
        before = till.cursors()
        report = SyncReport(started_at=till.clock())
        with contextlib.suppress(SyncError):
            self.run(till.engine.pull(report))
        self.after_pull(i, before, set(report.snapshots))

    @rule(i=till_ix, back=st.integers(1, 5))
    def replay_an_old_page(self, i: int, back: int) -> None:
        """Pages from an older cursor arrive (a retried pull): applying them twice changes
        nothing the first time did not."""
        from sync.protocol import PullRequest

        till = self.tills[i]
        cursors = till.cursors()
        if len(cursors) < 3 or till.net.mode != "ok" or till.net.plan:
            return
        if not self.on_hq_history(till):
            return  # a retried pull of this till would carry anchors HQ answers with a reset
        old = {s: max(0, c - back) for s, c in cursors.items()}
        try:
            res = self.run(
                till.engine.client.pull(PullRequest(device_time=till.clock(), cursors=old))  # type: ignore[arg-type]
            )
        except SyncError:
            return
        pages = [p for p in res.pages.values() if p.reset is None]
        till.state.apply_pages(pages)  # may bring changes the till had not pulled yet
        once = (till.catalogue(), till.cursors(), till.q("SELECT * FROM hq_config"))
        assert till.state.apply_pages(pages) == 0
        assert (till.catalogue(), till.cursors(), till.q("SELECT * FROM hq_config")) == once

    # -- the network ---------------------------------------------------------------------------

    @rule(i=till_ix, fault=st.sampled_from(FAULTS), times=st.integers(1, 3))
    def fail_next(self, i: int, fault: Fault, times: int) -> None:
        self.tills[i].net.fail_next(*([fault] * times))

    @rule(i=till_ix)
    def partition(self, i: int) -> None:
        self.tills[i].net.mode = "partition"

    @rule(i=till_ix)
    def heal(self, i: int) -> None:
        self.tills[i].net.mode = "ok"
        self.tills[i].net.plan.clear()

    # -- HQ ------------------------------------------------------------------------------------

    @rule(sku=skus, price=st.integers(0, 5000))
    def hq_price(self, sku: str, price: int) -> None:
        admin.set_price(self.hq.db, sku, price)
        self.record_hq_state()

    @rule(sku=skus, name=st.text("可乐茶水 abc", min_size=1, max_size=8), code=st.booleans())
    def hq_catalogue(self, sku: str, name: str, code: bool) -> None:
        """Rename a product (and maybe move it to a second barcode); also brings a retired one
        back."""
        from tests.sync.support import ean_of

        codes = (ean_of(sku),) + ((ean_of(sku + "x"),) if code else ())
        admin.upsert_catalog(
            self.hq.db,
            [admin.CatalogItem(sku=sku, name=name, tax_rate_bp=1300, barcodes=codes)],
        )
        self.record_hq_state()

    @rule(sku=skus)
    def hq_retire(self, sku: str) -> None:
        admin.deactivate_products(self.hq.db, [sku])
        self.record_hq_state()

    @rule(value=st.sampled_from(["welcome", "欢迎光临", "thanks"]))
    def hq_setting(self, value: str) -> None:
        admin.set_config(self.hq.db, "receipt.footer", value)
        self.record_hq_state()

    @rule(first=skus, prices=st.lists(st.integers(0, 5000), min_size=2, max_size=6))
    def hq_price_burst(self, first: str, prices: list[int]) -> None:
        """Several price changes, one transaction each: after a restore, HQ's new changes
        soon take the numbers a till had pulled before it."""
        for n, price in enumerate(prices):
            admin.set_price(self.hq.db, SKUS[(SKUS.index(first) + n) % len(SKUS)], price)
        self.record_hq_state()

    @rule()
    def hq_compact(self) -> None:
        compact(self.hq.db, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1))

    @rule()
    def hq_backup(self) -> None:
        self.backup = self.dir / "hq-backup.db"
        self.hq.backup(self.backup)

    @precondition(lambda self: self.backup is not None)
    @rule(writes=st.lists(st.tuples(skus, st.integers(0, 5000)), max_size=8))
    def hq_restore(self, writes: list[tuple[str, int]]) -> None:
        """HQ is restored from its backup and, before any till pulls, writes again (prices
        and names, one transaction each): the new changes take the numbers of the lost ones,
        so a till's cursor from before the restore is a valid number again."""
        assert self.backup is not None
        copy = self.dir / "hq-restore.db"
        shutil.copy(self.backup, copy)
        self.hq.restore(copy)
        self.unacked_restore = set(range(len(TILLS)))
        self.history = {}
        self.record_hq_state()
        for t in TILLS:
            self.last_applied[t] = self.hq.last_applied(*t)
        for n, (sku, price) in enumerate(writes):
            if n % 2:
                self.hq_catalogue(sku, f"after restore {price}", False)
            else:
                self.hq_price(sku, price)

    # -- invariants after every step -----------------------------------------------------------

    @invariant()
    def no_half_written_sale_and_stock_follows_the_ledger(self) -> None:
        for till in self.tills:
            assert half_written_sales(till.path) == []
            assert till.on_hand() == till.ledger_sums()

    @invariant()
    def hq_applies_each_seq_once_and_never_goes_back(self) -> None:
        for t in TILLS:
            seqs = self.hq.event_seqs(*t)
            assert [s for s, _, _ in seqs] == list(range(1, len(seqs) + 1))
            assert len({e for _, e, _ in seqs}) == len(seqs)
            last = self.hq.last_applied(*t)
            assert last == len(seqs) and last >= self.last_applied[t]
            self.last_applied[t] = last
        for store in {s for s, _ in TILLS}:
            assert self.hq.on_hand(store) == self.hq.ledger_sums(store)

    @invariant()
    def hq_has_no_sale_a_till_did_not_commit(self) -> None:
        for store in {s for s, _ in TILLS}:
            mine = set().union(*(self.sold[i] for i, t in enumerate(TILLS) if t[0] == store))
            assert set(self.hq.sale_ids(store)) <= mine

    @invariant()
    def an_acknowledged_event_is_at_hq(self) -> None:
        for i, t in enumerate(TILLS):
            if i in self.unacked_restore:
                continue
            top = self.tills[i].state.summary().highest_acked
            assert top <= self.hq.last_applied(*t)

    @invariant()
    def a_till_caught_up_with_hq_holds_hqs_data(self) -> None:
        for till in self.tills:
            c = till.cursors()
            if "catalog" not in c or "prices" not in c or not self.on_hq_history(till):
                continue  # a till on a history a restore lost holds what HQ had before it
            seen = self.history.get((c["catalog"], c["prices"]))
            if seen is not None:
                assert till.catalogue() == seen

    # -- quiescence ----------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            self.quiesce()
        finally:
            for till in self.tills:
                self.run(till.aclose())
            gc.collect()  # abandoned snapshot streams end while HQ's database is open
            self.hq.db.dispose()
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def quiesce(self) -> None:
        for till in self.tills:
            till.net.mode = "ok"
            till.net.plan.clear()
        for _ in range(3):  # a round for everyone, twice over: HQ changes reach every till
            for i in range(len(TILLS)):
                self.sync(i)
        hq_catalogue, hq_config = self.hq.catalogue(), self.hq_config()
        for i, (till, t) in enumerate(zip(self.tills, TILLS, strict=True)):
            report = self.run(till.sync())
            assert report.ok, report.error
            assert till.pending() == 0  # the outbox drained
            assert till.catalogue() == hq_catalogue  # HQ-owned data equal
            assert {
                k: json.loads(v) for k, v in till.q("SELECT key, value FROM hq_config")
            } == hq_config
            # every event the till committed was processed by HQ, once
            mine = {e for (e,) in till.q("SELECT event_id FROM outbox")}
            theirs = [e for _, e, _ in self.hq.event_seqs(*t)]
            assert sorted(theirs) == sorted(mine)
            assert till.state.summary().rejected == self.poison[i]
        for store in {s for s, _ in TILLS}:
            ids = [self.hq.sale_ids(store)]
            assert len(ids[0]) == len(set(ids[0]))
            local = set().union(*(self.sold[i] for i, t in enumerate(TILLS) if t[0] == store))
            assert set(ids[0]) == local  # every receipt shown is at HQ, exactly once
            # stock conserved: HQ's on-hand of the store = the sum of its tills' ledgers
            expected: dict[str, int] = {}
            for i, t in enumerate(TILLS):
                if t[0] == store:
                    for sku, n in self.tills[i].ledger_sums().items():
                        expected[sku] = expected.get(sku, 0) + n
            assert self.hq.on_hand(store) == {k: v for k, v in expected.items() if v}
            assert self.hq.ledger_sums(store) == self.hq.on_hand(store)


SyncMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
class TestSyncMachine(SyncMachine.TestCase):  # type: ignore[misc,name-defined]
    pass
