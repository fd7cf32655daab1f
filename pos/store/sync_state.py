"""The store's side of sync: the ports of :mod:`sync.ports` over the till's SQLite file.

- Outbox: pending events in seq order, HQ's answers marked in one transaction, a rewind when HQ
  reports a lower ``last_applied_seq`` (restored from a backup), retention of acknowledged
  events, the quarantine list.
- Pull: per-stream cursors, each with the anchor HQ gave with it (it names the history the
  cursor was taken on, so that HQ can tell a cursor from before its restore); a page's changes
  and its cursor in one transaction; a snapshot
  (a new till, or a reset) replaces that stream's rows in one transaction, never touching the
  store's own data or the outbox.
- Journal: the last contact with HQ (online, last success, clock offset).

HQ sends the catalogue and the prices as two streams while the till keeps one ``products`` row
with its price. A product is in ``products`` once both its catalogue row and its price are
known; until then the half that arrived waits in ``sync_pending_catalog`` or
``sync_pending_price``. So "the HQ-owned tables equal HQ's" reads: products + pending rows =
HQ's catalogue and prices.

These tables belong to sync and are created here by their own numbered migrations (kept in
``sync_meta``), in one transaction, before the engine starts."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pos.domain.gtin import lookup_key
from pos.store import orders as store_orders
from pos.store import outbox
from pos.store._conn import DbLike, atomic, connection
from pos.store.catalog import BulkLoad, CatalogItem, delete_products, upsert_products
from pos.store.db import BUSY_TIMEOUT_MS, FALLBACK_AUTOCHECKPOINT_PAGES, write_lock
from pos.store.errors import StoreError, translate
from pos.store.schema import SCHEMA_VERSION
from sync.ports import (
    Contact,
    MarkOutcome,
    OutboxSummary,
    PendingEvent,
    RejectedEvent,
    SnapshotProgress,
)
from sync.protocol import PushResult, SnapshotHeader, StreamPage, parse_snapshot_line

SYNC_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sync_cursor (
            stream TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE sync_pending_catalog (
            sku TEXT PRIMARY KEY,
            row TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE sync_pending_price (
            sku TEXT PRIMARY KEY,
            price INTEGER NOT NULL,
            currency TEXT NOT NULL
        ) WITHOUT ROWID""",
        # HQ's config stream: chain settings and staff ("staff:<id>"); value is JSON
        "CREATE TABLE hq_config (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    (
        # the anchor HQ gave with the cursor (which history the cursor was taken on; NULL: none
        # known yet, the next page brings one)
        "ALTER TABLE sync_cursor ADD COLUMN anchor TEXT",
    ),
)
SYNC_SCHEMA_VERSION = len(SYNC_MIGRATIONS)
ADOPT_PER_EVENT = 500  # stock movements per stock.adjusted event
ADOPT_WINDOW = 20_000  # ledger positions looked at per transaction
CURRENCY = "CNY"
# The sync worker's connection leaves checkpoints to the till's background checkpointer, which
# waits for a quiet moment; SQLite's own, run by the worker's commit after it releases the lock,
# only comes into play on a backlog that outgrows this (well before the till's own fallback,
# so a customer's sale is not the one that pays for it).
WORKER_AUTOCHECKPOINT_PAGES = FALLBACK_AUTOCHECKPOINT_PAGES // 2


# -- schema and connections ---------------------------------------------------------------------


def ensure_schema(db: DbLike) -> None:
    """Create or migrate the sync tables (one transaction; nothing to do when current)."""
    conn = connection(db)
    if _schema_version(conn) == SYNC_SCHEMA_VERSION:
        return
    with atomic(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        version = _schema_version(conn)
        if version > SYNC_SCHEMA_VERSION:
            raise StoreError(
                "This store file was synced by a newer version of pos. Update pos on this till."
            )
        for statements in SYNC_MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        _meta_set(conn, "schema", str(SYNC_SCHEMA_VERSION))


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM sync_meta WHERE key = 'schema'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def open_companion(path: Path) -> sqlite3.Connection:
    """A second connection to a store file that this process already holds open (and has
    migrated) with ``open_store``: the sync worker's own, since a sqlite3 connection belongs to
    the thread that opened it. It takes no file lock of its own (the process holds it). It is
    synchronous=FULL like the till's; only the engine's own bookkeeping commits at NORMAL (see
    ``SqliteSyncState._bookkeeping``). Its automatic checkpoints start only at
    WORKER_AUTOCHECKPOINT_PAGES: the till's background checkpointer does them at quiet moments."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WORKER_AUTOCHECKPOINT_PAGES}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise (translate(exc, path) or StoreError(f"Cannot open {path}: {exc}")) from exc
    if mode != "wal" or version != SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"{path} must be opened by the till (open_store) before sync starts.")
    ensure_schema(conn)
    return conn


def get_setting(db: DbLike, key: str) -> str | None:
    """A till setting (the ``config`` table) read on any connection of the store file."""
    row = connection(db).execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def spool_dir_for(db_path: Path) -> Path:
    """Where snapshot downloads are kept while they run (beside the store file)."""
    return db_path.with_name(db_path.name + ".sync")


def _meta_get(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM sync_meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def _meta_set(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO sync_meta (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text)


_STATE_OF = {"applied": "acked", "rejected": "rejected", "superseded": "superseded"}
KEPT_STREAMS = ("catalog", "prices", "config", "orders")


class SqliteSyncState:
    """The outbox, pull and journal ports over one connection (of the sync worker's thread)."""

    def __init__(self, db: DbLike, spool_dir: Path, *, exclusive: bool = False) -> None:
        """``exclusive``: this is the only connection to the store file (``pos sync``), so a
        snapshot that changes most of the catalogue may use the bulk loader; beside a running
        till only the differences are written."""
        self.conn = connection(db)
        self.exclusive = exclusive
        self.timings: dict[str, float] = {}  # of the last snapshot load, by phase
        self.spool_dir = Path(spool_dir)
        file = self.conn.execute("PRAGMA database_list").fetchone()[2]
        # the till's connection takes the same lock: a sale waits for a transaction of ours
        # exactly as long as it lasts (see pos.store.db.write_lock)
        self._write_lock = write_lock(file) if file else threading.RLock()
        self._wal_path = f"{file}-wal" if file else None
        ensure_schema(self.conn)
        self.conn.create_function("pos_lookup_key", 1, lookup_key, deterministic=True)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the process's write lock of the store file (joins the
        caller's transaction when there is one)."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        with self._write_lock, atomic(conn):
            yield conn

    @contextlib.contextmanager
    def _bookkeeping(self) -> Iterator[sqlite3.Connection]:
        """A transaction of the engine's own bookkeeping (HQ's answers, cursors with their
        pages, the pulled orders, the last contact): committed without waiting for the disk
        (synchronous=NORMAL in WAL mode), so it holds the write lock for as short as possible
        and a sale never waits behind an fsync of sync's.

        Why that is safe: in WAL mode a NORMAL commit is still atomic and a power cut cannot
        corrupt the file; it can only undo the last transactions written after the last
        fsync of the WAL. Every commit of the till (sales, order steps, anything a customer
        or a member of staff was told is done, and every event of the outbox) is FULL, and
        its fsync of the WAL makes everything before it durable too, so only bookkeeping
        written after the till's last commit can be lost, and all of it is HQ's to give
        again: an answer lost leaves the event pending and its re-push is answered
        "duplicate" (HQ keeps last_applied_seq); a page lost goes together with its cursor
        (same transaction) and is pulled again; the last contact is refreshed next round.
        Nothing written here is the store's own data: events are never created here
        (``before_push`` creates them, at FULL)."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._writing():
                yield conn
        finally:
            conn.execute("PRAGMA synchronous = FULL")
        self._flush_wal()

    def _flush_wal(self) -> None:
        """Write what the last bookkeeping commit left in the WAL through to the disk, outside
        the write lock. Otherwise the next sale's fsync would flush it (hundreds of KB after
        a batch of answers) while the customer waits."""
        if self._wal_path is None:
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fdatasync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # ==========================================================================================
    # outbox

    def before_push(self, now: datetime) -> int:
        """Give every stock movement that no event carries yet (initial stock of a catalogue
        import, ...) a ``stock.adjusted`` event, so HQ's ledger gets every movement of this
        till and on-hand agrees at the end of the day. Sales carry their own movements.

        The ledger is walked by position in windows, one short transaction each (events are
        created here, so each commits with synchronous=FULL): two million movements of an
        import never hold the file long enough to make a sale wait."""
        conn = self.conn
        added = 0
        while True:
            mark = int(_meta_get(conn, "ledger_mark") or 0)
            top = conn.execute("SELECT max(pos) FROM stock_ledger").fetchone()[0] or 0
            if top <= mark:
                return added
            end = min(top, mark + ADOPT_WINDOW)
            # looked at before taking the write lock: after a day offline the window holds
            # thousands of sales' movements (which carry their events) and the scan takes
            # milliseconds that a sale must not wait for. Only this thread adopts movements,
            # and new ledger rows get positions above ``top``, so what it finds stays true.
            rows = conn.execute(
                "SELECT pos, movement_id, sku, delta, reason FROM stock_ledger"
                " WHERE pos > ? AND pos <= ? AND ref_event_id IS NULL ORDER BY pos",
                (mark, end),
            ).fetchall()
            if not rows:
                with self._bookkeeping():  # a mark lost in a power cut only means a re-scan
                    _meta_set(conn, "ledger_mark", str(end))
                continue
            with self._writing():
                for i in range(0, len(rows), ADOPT_PER_EVENT):
                    chunk = rows[i : i + ADOPT_PER_EVENT]
                    payload = {
                        "movements": [
                            {"movement_id": mid, "sku": sku, "delta": delta, "reason": reason}
                            for _, mid, sku, delta, reason in chunk
                        ]
                    }
                    _, event_id = outbox.append(conn, "stock.adjusted", payload, now)
                    conn.executemany(
                        "UPDATE stock_ledger SET ref_event_id = ? WHERE pos = ?",
                        [(event_id, r[0]) for r in chunk],
                    )
                    added += 1
                _meta_set(conn, "ledger_mark", str(end))

    def pending_batch(self, limit: int, max_bytes: int) -> list[PendingEvent]:
        rows = self.conn.execute(
            "SELECT seq, event_id, device_id, type, schema_version, occurred_at, payload,"
            " payload_hash, attempts FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        )
        batch: list[PendingEvent] = []
        size = 0
        for row in rows:
            size += len(row[6]) + 256
            if batch and size > max_bytes:
                break
            batch.append(PendingEvent(*row))
        return batch

    def record_results(
        self, results: Sequence[PushResult], last_applied_seq: int, now: datetime
    ) -> MarkOutcome:
        acked = rejected = superseded = rewound = 0
        at = _iso(now)
        updates = []
        for r in results:
            status = r.effective_status
            state = _STATE_OF[status]
            acked += state == "acked"
            rejected += state == "rejected"
            superseded += state == "superseded"
            result: dict[str, str] = {"status": r.status}
            if r.original_status is not None:
                result["original_status"] = r.original_status
            if r.reason is not None:
                result["reason"] = r.reason
            updates.append(
                (state, json.dumps(result, ensure_ascii=False), at, r.seq, str(r.event_id))
            )
        missing: tuple[int, int] | None = None
        superseded_steps = [
            (str(r.event_id), r.reason) for r in results if r.effective_status == "superseded"
        ]
        with self._bookkeeping() as conn:
            if updates:
                conn.executemany(
                    "UPDATE outbox SET state = ?, hq_result = ?, acked_at = ?"
                    " WHERE seq = ? AND event_id = ?",
                    updates,
                )
            if superseded_steps:  # an order another till of the store has: not this till's
                store_orders.hq_answered(conn, superseded_steps, now)
            if last_applied_seq < self._highest_answered(conn):
                # HQ was restored from a backup: it no longer has these; send them again
                rewound = conn.execute(
                    "UPDATE outbox SET state = 'pending', acked_at = NULL, hq_result = NULL,"
                    " next_attempt_at = NULL WHERE seq > ? AND state != 'pending'",
                    (last_applied_seq,),
                ).rowcount
            issued = self._last_issued(conn)
            if last_applied_seq < issued:
                nxt = conn.execute(
                    "SELECT min(seq) FROM outbox WHERE seq > ?", (last_applied_seq,)
                ).fetchone()[0]
                if nxt is None:
                    missing = (last_applied_seq + 1, issued)
                elif nxt > last_applied_seq + 1:
                    missing = (last_applied_seq + 1, int(nxt) - 1)
        return MarkOutcome(acked, rejected, superseded, rewound, missing)

    def _highest_answered(self, conn: sqlite3.Connection) -> int:
        top = 0
        for state in ("acked", "rejected", "superseded"):
            row = conn.execute("SELECT max(seq) FROM outbox WHERE state = ?", (state,)).fetchone()
            top = max(top, int(row[0] or 0))
        return top

    def _last_issued(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT next_seq - 1 FROM device WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def record_failure(self, seqs: Sequence[int], now: datetime, next_attempt_at: datetime) -> None:
        if not seqs:
            return
        with self._bookkeeping() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?"
                " WHERE seq BETWEEN ? AND ? AND state = 'pending'",
                (_iso(next_attempt_at), min(seqs), max(seqs)),
            )

    def summary(self) -> OutboxSummary:
        conn = self.conn

        def count(state: str) -> int:
            return int(
                conn.execute("SELECT count(*) FROM outbox WHERE state = ?", (state,)).fetchone()[0]
            )

        head = conn.execute(
            "SELECT occurred_at, next_attempt_at FROM outbox WHERE state = 'pending'"
            " ORDER BY seq LIMIT 1"
        ).fetchone()
        return OutboxSummary(
            pending=count("pending"),
            oldest_pending_at=_parse_time(head[0]) if head else None,
            rejected=count("rejected"),
            superseded=count("superseded"),
            last_seq=self._last_issued(conn),
            highest_acked=self._highest_answered(conn),
            next_attempt_at=_parse_time(head[1]) if head else None,
        )

    def rejected(self, limit: int = 200) -> list[RejectedEvent]:
        out = []
        for seq, event_id, type_, occurred_at, result, payload in self.conn.execute(
            "SELECT seq, event_id, type, occurred_at, hq_result, payload FROM outbox"
            " WHERE state = 'rejected' ORDER BY seq DESC LIMIT ?",
            (limit,),
        ):
            reason = ""
            if result:
                try:
                    reason = str(json.loads(result).get("reason") or "")
                except ValueError:
                    reason = str(result)
            out.append(RejectedEvent(seq, event_id, type_, occurred_at, reason, payload))
        return out

    def prune(self, acked_before: datetime) -> int:
        """Delete acknowledged (and superseded) events answered before ``acked_before``, a
        thousand per short transaction so a sale never waits long."""
        total = 0
        cutoff = _iso(acked_before)
        while True:
            # found before taking the write lock (the scan walks every answered event kept
            # for 30 days, and usually finds nothing): only the delete makes a sale wait
            seqs = [
                (seq,)
                for (seq,) in self.conn.execute(
                    "SELECT seq FROM outbox WHERE state IN ('acked', 'superseded')"
                    " AND acked_at < ? ORDER BY seq LIMIT 1000",
                    (cutoff,),
                )
            ]
            if seqs:
                with self._bookkeeping() as conn:
                    conn.executemany(
                        "DELETE FROM outbox WHERE seq = ? AND state IN ('acked', 'superseded')",
                        seqs,
                    )
            total += len(seqs)
            if len(seqs) < 1000:
                return total

    # ==========================================================================================
    # pull

    def cursors(self, streams: Iterable[str]) -> dict[str, int | None]:
        known = {
            str(s): int(c) for s, c in self.conn.execute("SELECT stream, cursor FROM sync_cursor")
        }
        return {s: known.get(s) for s in streams}

    def anchors(self, streams: Iterable[str]) -> dict[str, str | None]:
        known = {
            str(s): None if a is None else str(a)
            for s, a in self.conn.execute("SELECT stream, anchor FROM sync_cursor")
        }
        return {s: known.get(s) for s in streams}

    def apply_pages(self, pages: Sequence[StreamPage]) -> int:
        if not pages:
            return 0
        applied = 0
        with self._bookkeeping() as conn:
            for page in pages:
                row = conn.execute(
                    "SELECT cursor, anchor FROM sync_cursor WHERE stream = ?", (page.stream,)
                ).fetchone()
                stored = int(row[0]) if row else 0
                for change in page.changes:
                    if change.seq <= stored:
                        continue  # already applied (a page seen twice)
                    self._apply(page.stream, change.op, change.key, change.row, change.seq)
                    applied += 1
                if row is None or page.cursor > stored:
                    _set_cursor(conn, page.stream, page.cursor, page.anchor)
                elif page.cursor == stored and row[1] is None and page.anchor is not None:
                    # a cursor kept from before HQ gave anchors learns the one it names
                    _set_cursor(conn, page.stream, stored, page.anchor)
        return applied

    # -- the appliers (inside the caller's transaction) ----------------------------------------

    def _catalog(self, op: str, key: str, row: dict[str, Any] | None, seq: int) -> None:
        conn = self.conn
        if op == "delete" or row is None:
            price = self._product_price(key)
            if price is not None:
                _hold_price(conn, key, price, CURRENCY)
            delete_products(conn, [key])
            conn.execute("DELETE FROM sync_pending_catalog WHERE sku = ?", (key,))
            return
        price = self._product_price(key)
        if price is None:
            held = conn.execute(
                "SELECT price, currency FROM sync_pending_price WHERE sku = ?", (key,)
            ).fetchone()
            if held is not None:
                price = int(held[0])
        if price is None:
            conn.execute(
                "INSERT INTO sync_pending_catalog (sku, row) VALUES (?, ?)"
                " ON CONFLICT(sku) DO UPDATE SET row = excluded.row",
                (key, json.dumps(row, ensure_ascii=False, sort_keys=True)),
            )
            return
        upsert_products(conn, [_item(key, row, price, seq)])
        conn.execute("DELETE FROM sync_pending_price WHERE sku = ?", (key,))
        conn.execute("DELETE FROM sync_pending_catalog WHERE sku = ?", (key,))

    def _prices(self, op: str, key: str, row: dict[str, Any] | None, seq: int) -> None:
        conn = self.conn
        if op == "delete" or row is None:
            conn.execute("DELETE FROM sync_pending_price WHERE sku = ?", (key,))
            held = self._catalog_row_of_product(key)
            if held is not None:  # a product without a price cannot be sold: back to waiting
                conn.execute(
                    "INSERT OR REPLACE INTO sync_pending_catalog (sku, row) VALUES (?, ?)",
                    (key, json.dumps(held, ensure_ascii=False, sort_keys=True)),
                )
                delete_products(conn, [key])
            return
        price, currency = int(row["price"]), str(row.get("currency") or CURRENCY)
        if self._product_price(key) is not None:
            conn.execute("UPDATE products SET price = ? WHERE sku = ?", (price, key))
            return
        waiting = conn.execute(
            "SELECT row FROM sync_pending_catalog WHERE sku = ?", (key,)
        ).fetchone()
        if waiting is None:
            _hold_price(conn, key, price, currency)
            return
        upsert_products(conn, [_item(key, json.loads(waiting[0]), price, seq)])
        conn.execute("DELETE FROM sync_pending_catalog WHERE sku = ?", (key,))
        conn.execute("DELETE FROM sync_pending_price WHERE sku = ?", (key,))

    def _config(self, op: str, key: str, row: dict[str, Any] | None, seq: int) -> None:
        if op == "delete" or row is None:
            self.conn.execute("DELETE FROM hq_config WHERE key = ?", (key,))
            return
        self.conn.execute(
            "INSERT INTO hq_config (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(row.get("value"), ensure_ascii=False, sort_keys=True)),
        )

    def _apply(self, stream: str, op: str, key: str, row: dict[str, Any] | None, seq: int) -> None:
        if stream == "catalog":
            self._catalog(op, key, row, seq)
        elif stream == "prices":
            self._prices(op, key, row, seq)
        elif stream == "config":
            self._config(op, key, row, seq)
        elif stream == "orders":
            store_orders.apply_change(self.conn, op, key, row)
        else:
            raise StoreError(f"HQ sent changes of a stream this till does not know: {stream}")

    @property
    def streams(self) -> tuple[str, ...]:
        """The HQ streams this till keeps."""
        return KEPT_STREAMS

    def _product_price(self, sku: str) -> int | None:
        row = self.conn.execute("SELECT price FROM products WHERE sku = ?", (sku,)).fetchone()
        return int(row[0]) if row else None

    def _catalog_row_of_product(self, sku: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT name, tax_rate_bp, active FROM products WHERE sku = ?", (sku,)
        ).fetchone()
        if row is None:
            return None
        codes = sorted(
            str(r[0]) for r in self.conn.execute("SELECT raw FROM barcodes WHERE sku = ?", (sku,))
        )
        return {
            "sku": sku,
            "name": row[0],
            "tax_rate_bp": int(row[1]),
            "barcodes": codes,
            "active": bool(row[2]),
        }

    # -- snapshots ------------------------------------------------------------------------------

    def spool_path(self, stream: str) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        return self.spool_dir / f"{stream}.snapshot.ndjson"

    def load_snapshots(
        self, spools: Mapping[str, Path], progress: SnapshotProgress | None = None
    ) -> dict[str, int]:
        headers = {s: _read_header(p) for s, p in spools.items()}
        counts: dict[str, int] = {}
        if "catalog" in spools or "prices" in spools:
            counts.update(self._load_catalog(spools, headers, progress))
        else:
            with self._bookkeeping() as conn:
                self._load_rest(conn, spools, headers, counts)
        for path in spools.values():
            path.unlink(missing_ok=True)
        return counts

    def _load_rest(
        self,
        conn: sqlite3.Connection,
        spools: Mapping[str, Path],
        headers: Mapping[str, SnapshotHeader],
        counts: dict[str, int],
    ) -> None:
        """Streams other than catalog/prices, and every cursor (inside the transaction)."""
        if "config" in spools:
            conn.execute("DELETE FROM hq_config")
            n = 0
            for line in _row_lines(spools["config"]):
                data = json.loads(line)
                self._config("upsert", str(data["key"]), data["row"], 0)
                n += 1
            counts["config"] = n
        if "orders" in spools:  # this store's rows; the store's own progress is kept
            n = 0
            for line in _row_lines(spools["orders"]):
                data = json.loads(line)
                store_orders.apply_change(conn, "upsert", str(data["key"]), data["row"])
                n += 1
            counts["orders"] = n
        for stream, header in headers.items():
            _set_cursor(conn, stream, header.cursor, header.anchor)

    def _load_catalog(
        self,
        spools: Mapping[str, Path],
        headers: Mapping[str, SnapshotHeader],
        progress: SnapshotProgress | None,
    ) -> dict[str, int]:
        """Catalog and/or prices from snapshot files (the other one from the till's own rows),
        staged in a scratch database, then swapped in with the bulk loader: indexes and the
        name index are built once, and the swap is one transaction."""
        conn = self.conn
        stage = self.spool_dir / "stage.db"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{stage}{suffix}").unlink(missing_ok=True)
        conn.execute("ATTACH DATABASE ? AS stage", (str(stage),))
        counts: dict[str, int] = {}
        self.timings = {}
        last = [time.perf_counter()]

        def mark(phase: str) -> None:
            now = time.perf_counter()
            self.timings[phase] = round(now - last[0], 3)
            last[0] = now

        try:
            conn.execute("PRAGMA stage.journal_mode = OFF")
            conn.execute("PRAGMA stage.synchronous = OFF")
            conn.execute(
                "CREATE TABLE stage.cat (sku TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " tax INTEGER NOT NULL, active INTEGER NOT NULL, barcodes TEXT) WITHOUT ROWID"
            )
            conn.execute(
                "CREATE TABLE stage.price (sku TEXT PRIMARY KEY, price INTEGER NOT NULL,"
                " currency TEXT NOT NULL) WITHOUT ROWID"
            )
            # a deferred transaction: it writes only the scratch database, so the till's own
            # writes to the store file go on while millions of rows are staged
            conn.execute("BEGIN")
            try:
                if "catalog" in spools:
                    counts["catalog"] = _stage_lines(
                        conn,
                        "INSERT OR REPLACE INTO stage.cat SELECT j ->> '$.key',"
                        " j ->> '$.row.name', j ->> '$.row.tax_rate_bp',"
                        " coalesce(j ->> '$.row.active', 1), j -> '$.row.barcodes'"
                        " FROM (SELECT ? AS j)",
                        spools["catalog"],
                        lambda n: progress("catalog", n) if progress else None,
                    )
                else:
                    conn.execute(
                        "INSERT INTO stage.cat SELECT p.sku, p.name, p.tax_rate_bp, p.active,"
                        " (SELECT json_group_array(raw) FROM (SELECT raw FROM main.barcodes b"
                        " WHERE b.sku = p.sku ORDER BY raw)) FROM main.products p"
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO stage.cat SELECT sku, row ->> '$.name',"
                        " row ->> '$.tax_rate_bp', coalesce(row ->> '$.active', 1),"
                        " row -> '$.barcodes' FROM main.sync_pending_catalog"
                    )
                if "prices" in spools:
                    counts["prices"] = _stage_lines(
                        conn,
                        "INSERT OR REPLACE INTO stage.price SELECT j ->> '$.key',"
                        " j ->> '$.row.price', coalesce(j ->> '$.row.currency', 'CNY')"
                        " FROM (SELECT ? AS j)",
                        spools["prices"],
                        lambda n: progress("prices", n) if progress else None,
                    )
                else:
                    conn.execute(
                        "INSERT INTO stage.price SELECT sku, price, ? FROM main.products",
                        (CURRENCY,),
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO stage.price SELECT sku, price, currency"
                        " FROM main.sync_pending_price"
                    )
                conn.execute("COMMIT")
                mark("stage_s")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            staged = int(conn.execute("SELECT count(*) FROM stage.cat").fetchone()[0])
            if not (self.exclusive and staged > BULK_THRESHOLD):
                # a small catalogue, or the till is running beside us: write only what changed,
                # through the same appliers as a page, in one short transaction
                diff = self._diff(conn)
                with self._bookkeeping():
                    diff.apply(self)
                    self._load_rest(conn, spools, headers, counts)
                return counts
            # the file is ours and the catalogue is big: rewrite it whole, indexes after
            conn.execute(
                "CREATE TABLE stage.bc AS SELECT pos_lookup_key(j.value) AS code,"
                " c.sku AS sku, trim(j.value) AS raw"
                " FROM stage.cat c JOIN stage.price p ON p.sku = c.sku,"
                " json_each(coalesce(c.barcodes, '[]')) j"
            )
            mark("keys_s")
            with BulkLoad(conn, replace=True) as load:
                c = load.conn
                c.execute(
                    "INSERT INTO main.products (sku, name, price, tax_rate_bp, active)"
                    " SELECT c.sku, c.name, p.price, c.tax, c.active"
                    " FROM stage.cat c JOIN stage.price p ON p.sku = c.sku"
                )
                c.execute(
                    # keys are unique: HQ's snapshot lists its own barcode table, keyed alike
                    "INSERT INTO main.barcodes (code, sku, raw) SELECT code, sku, raw FROM stage.bc"
                )
                c.execute("DELETE FROM main.sync_pending_catalog")
                c.execute(
                    "INSERT INTO main.sync_pending_catalog (sku, row)"
                    " SELECT c.sku, json_object('active', json(CASE WHEN c.active THEN 'true'"
                    " ELSE 'false' END), 'barcodes', json(coalesce(c.barcodes, '[]')),"
                    " 'name', c.name, 'sku', c.sku, 'tax_rate_bp', c.tax) FROM stage.cat c"
                    " WHERE NOT EXISTS (SELECT 1 FROM stage.price p WHERE p.sku = c.sku)"
                )
                c.execute("DELETE FROM main.sync_pending_price")
                c.execute(
                    "INSERT INTO main.sync_pending_price (sku, price, currency)"
                    " SELECT p.sku, p.price, p.currency FROM stage.price p"
                    " WHERE NOT EXISTS (SELECT 1 FROM stage.cat c WHERE c.sku = p.sku)"
                )
                self._load_rest(c, spools, headers, counts)
                mark("insert_s")
            mark("indexes_s")  # the bulk loader's exit: indexes, name index, commit
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE stage")
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{stage}{suffix}").unlink(missing_ok=True)
        return counts

    def _diff(self, conn: sqlite3.Connection) -> _Diff:
        """What the staged snapshot changes against the till's rows (read-only queries)."""
        cat_upserts = [
            (
                str(sku),
                {
                    "sku": sku,
                    "name": name,
                    "tax_rate_bp": tax,
                    "active": bool(active),
                    "barcodes": json.loads(codes),
                },
            )
            for sku, name, tax, active, codes in conn.execute(
                "SELECT c.sku, c.name, c.tax, c.active, coalesce(c.barcodes, '[]')"
                " FROM stage.cat c"
                " LEFT JOIN main.products p ON p.sku = c.sku"
                " LEFT JOIN main.sync_pending_catalog w ON w.sku = c.sku"
                " WHERE w.sku IS NOT NULL OR p.sku IS NULL"
                " OR p.name IS NOT c.name OR p.tax_rate_bp IS NOT c.tax"
                " OR p.active IS NOT c.active"
                " OR (SELECT json_group_array(raw) FROM (SELECT raw FROM main.barcodes b"
                "     WHERE b.sku = c.sku ORDER BY raw))"
                "    IS NOT (SELECT json_group_array(value) FROM (SELECT value"
                "     FROM json_each(coalesce(c.barcodes, '[]')) ORDER BY value))"
            )
        ]
        cat_deletes = [
            str(r[0])
            for r in conn.execute(
                "SELECT sku FROM main.products WHERE sku NOT IN (SELECT sku FROM stage.cat)"
                " UNION SELECT sku FROM main.sync_pending_catalog"
                " WHERE sku NOT IN (SELECT sku FROM stage.cat)"
            )
        ]
        price_upserts = [
            (str(sku), {"sku": sku, "price": int(price), "currency": currency})
            for sku, price, currency in conn.execute(
                "SELECT s.sku, s.price, s.currency FROM stage.price s"
                " LEFT JOIN main.products p ON p.sku = s.sku"
                " LEFT JOIN main.sync_pending_price w ON w.sku = s.sku"
                " WHERE (p.sku IS NULL AND w.sku IS NULL)"
                " OR (p.sku IS NOT NULL AND p.price IS NOT s.price)"
                " OR (w.sku IS NOT NULL AND (w.price IS NOT s.price"
                " OR w.currency IS NOT s.currency))"
            )
        ]
        price_deletes = [
            str(r[0])
            for r in conn.execute(
                "SELECT sku FROM main.products WHERE sku NOT IN (SELECT sku FROM stage.price)"
                " UNION SELECT sku FROM main.sync_pending_price"
                " WHERE sku NOT IN (SELECT sku FROM stage.price)"
            )
        ]
        return _Diff(cat_upserts, cat_deletes, price_upserts, price_deletes)

    # ==========================================================================================
    # journal

    def note_contact(
        self,
        now: datetime,
        *,
        ok: bool,
        clock_offset_s: float | None = None,
        error: str | None = None,
    ) -> None:
        before = self.contact()
        value = {
            "last_attempt_at": _iso(now),
            "last_success_at": _iso(now) if ok else _iso_or_none(before.last_success_at),
            "online": ok,
            "clock_offset_s": clock_offset_s
            if clock_offset_s is not None
            else before.clock_offset_s,
            "last_error": None if ok else error,
        }
        with self._bookkeeping() as conn:
            _meta_set(conn, "contact", json.dumps(value))

    def contact(self) -> Contact:
        raw = _meta_get(self.conn, "contact")
        if not raw:
            return Contact()
        data = json.loads(raw)
        return Contact(
            last_attempt_at=_parse_time(data.get("last_attempt_at")),
            last_success_at=_parse_time(data.get("last_success_at")),
            online=bool(data.get("online")),
            clock_offset_s=data.get("clock_offset_s"),
            last_error=data.get("last_error"),
        )


# -- helpers --------------------------------------------------------------------------------------

BULK_THRESHOLD = 20_000  # a bigger snapshot is bulk-loaded (when the file is ours)


@dataclass(frozen=True)
class _Diff:
    cat_upserts: list[tuple[str, dict[str, Any]]]
    cat_deletes: list[str]
    price_upserts: list[tuple[str, dict[str, Any]]]
    price_deletes: list[str]

    @property
    def size(self) -> int:
        return (
            len(self.cat_upserts)
            + len(self.cat_deletes)
            + len(self.price_upserts)
            + len(self.price_deletes)
        )

    def apply(self, state: SqliteSyncState) -> None:
        """Catalogue first, then prices: a product new in both ends up whole."""
        for sku in self.cat_deletes:
            state._catalog("delete", sku, None, 0)
        for sku, row in self.cat_upserts:
            state._catalog("upsert", sku, row, 0)
        for sku in self.price_deletes:
            state._prices("delete", sku, None, 0)
        for sku, row in self.price_upserts:
            state._prices("upsert", sku, row, 0)


def _iso_or_none(when: datetime | None) -> str | None:
    return _iso(when) if when is not None else None


def _set_cursor(conn: sqlite3.Connection, stream: str, cursor: int, anchor: str | None) -> None:
    """A stream's cursor and its anchor, always together: an anchor belongs to one cursor."""
    conn.execute(
        "INSERT INTO sync_cursor (stream, cursor, anchor) VALUES (?, ?, ?)"
        " ON CONFLICT(stream) DO UPDATE SET cursor = excluded.cursor, anchor = excluded.anchor",
        (stream, cursor, anchor),
    )


def _hold_price(conn: sqlite3.Connection, sku: str, price: int, currency: str) -> None:
    conn.execute(
        "INSERT INTO sync_pending_price (sku, price, currency) VALUES (?, ?, ?)"
        " ON CONFLICT(sku) DO UPDATE SET price = excluded.price, currency = excluded.currency",
        (sku, price, currency),
    )


def _item(sku: str, row: Mapping[str, Any], price: int, seq: int) -> CatalogItem:
    return CatalogItem(
        sku=sku,
        name=str(row["name"]),
        price=price,
        tax_rate_bp=int(row["tax_rate_bp"]),
        barcodes=tuple(str(c) for c in row.get("barcodes") or ()),
        active=bool(row.get("active", True)),
        updated_cursor=str(seq) if seq else None,
    )


def _read_header(path: Path) -> SnapshotHeader:
    with open(path, "rb") as f:
        header = parse_snapshot_line(f.readline())
    if not isinstance(header, SnapshotHeader):
        raise StoreError(f"{path} is not a snapshot file (no header line)")
    return header


def _row_lines(path: Path) -> Iterator[str]:
    """The row lines of a complete snapshot file (between the header and the end line)."""
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            if line.startswith('{"end"'):
                return
            yield line


def _stage_lines(
    conn: sqlite3.Connection, sql: str, path: Path, tick: Callable[[int], None]
) -> int:
    n = 0
    batch: list[tuple[str]] = []
    for line in _row_lines(path):
        batch.append((line,))
        if len(batch) >= 50_000:
            conn.executemany(sql, batch)
            n += len(batch)
            batch = []
            tick(n)
    if batch:
        conn.executemany(sql, batch)
        n += len(batch)
    tick(n)
    return n


def remove_spools(spool_dir: Path) -> None:
    """Forget half-downloaded snapshots (a till being reset by hand)."""
    if spool_dir.is_dir():
        for entry in spool_dir.iterdir():
            if entry.is_file():
                os.unlink(entry)
