"""Opening the store's SQLite file: one file per till, one open `pos` per file.

Opening must stay cheap whatever the catalogue size (the till has to be ready to scan within two
seconds on a 2-million-SKU file), so nothing here scans a table: the only checks are the file
header (read by the first PRAGMA) and PRAGMA user_version for migrations."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from pos.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreIdentityError,
    StoreLockedError,
    StoreMissingError,
    StoreNotInitialisedError,
    translate,
)
from pos.store.schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_TIMEZONE = "Asia/Shanghai"
BUSY_TIMEOUT_MS = 5_000
CHECKPOINT_TICK_S = 0.25  # how often the checkpointer looks at the WAL
CHECKPOINT_QUIET_S = 1.0  # no commit for this long: a quiet moment to checkpoint in
CHECKPOINT_MAX_DELAY_S = 30.0  # ...but never wait longer than this while commits keep coming
FALLBACK_AUTOCHECKPOINT_PAGES = 10_000  # 40 MB of WAL: only if background checkpoints stall
MMAP_BYTES = 1 << 30  # address space only; a 2M-SKU store file is about 0.7 GB


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    store_id: str
    device_id: str
    timezone: str = DEFAULT_TIMEZONE

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(path: Path | str) -> threading.RLock:
    """The lock every write transaction on this store file takes in this process, the till's
    and the sync worker's alike (one `pos` per file, so this covers every writer).

    SQLite would serialise them anyway, but a connection that finds the file locked polls:
    its busy handler sleeps 1, 2, 5, 10... ms between tries, so a sale that arrives while the
    sync worker marks a batch (a few ms) could sleep up to twice that long. Waiting on this
    lock instead, the sale starts the moment the other transaction ends. Re-entrant: a write
    on a second connection inside one thread's transaction then fails with SQLite's busy
    timeout instead of hanging the till."""
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


class Store:
    """An open store database. Use `transaction()` for every write; reads may run outside one.

    The sqlite3 connection (and so `db`) belongs to the thread that opened the store."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_file: IO[bytes]) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self._lock_file: IO[bytes] | None = lock_file
        self._identity: DeviceIdentity | None = None
        self._checkpointer: _Checkpointer | None = None
        self._write_lock = write_lock(path)

    # -- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT). Any exception rolls everything
        back; sqlite3 errors that mean "disk full", "damaged" or "busy" come out as StoreError.
        Nested use joins the outer transaction through a savepoint."""
        conn = self.conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT nested")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO nested")
                    conn.execute("RELEASE nested")
                raise
            else:
                conn.execute("RELEASE nested")
            return
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translated(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translated(exc) from exc
                raise
        self._committed()

    def _translated(self, exc: sqlite3.Error) -> BaseException:
        return translate(exc, self.path) or exc

    # -- identity -----------------------------------------------------------------------------

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            row = self.conn.execute(
                "SELECT store_id, device_id, timezone FROM device WHERE id = 1"
            ).fetchone()
            if row is None:
                raise StoreNotInitialisedError(
                    f"This till has no store identity yet ({self.path}). "
                    "Run `pos init --store-id ID --device-id ID` first."
                )
            self._identity = DeviceIdentity(*row)
        return self._identity

    def has_identity(self) -> bool:
        return self.conn.execute("SELECT 1 FROM device WHERE id = 1").fetchone() is not None

    def set_identity(
        self,
        store_id: str,
        device_id: str,
        timezone: str = DEFAULT_TIMEZONE,
        *,
        now: datetime,
    ) -> DeviceIdentity:
        """Record which store and device this till is. Idempotent with the same values; changing
        the store or device once events have been issued is refused, since HQ counts this
        device's events by their seq."""
        store_id, device_id = store_id.strip(), device_id.strip()
        if not store_id or not device_id:
            raise StoreIdentityError("Store id and device id must not be empty.")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise StoreIdentityError(
                f"Unknown time zone {timezone!r}; use a name like Asia/Shanghai."
            ) from exc
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT store_id, device_id, next_seq FROM device WHERE id = 1"
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO device (id, store_id, device_id, timezone, created_at)"
                    " VALUES (1, ?, ?, ?, ?)",
                    (store_id, device_id, timezone, now.isoformat()),
                )
            else:
                if (row[0], row[1]) != (store_id, device_id) and row[2] > 1:
                    raise StoreIdentityError(
                        f"This till is already store {row[0]}, device {row[1]}, and has issued "
                        "events under that name; it cannot be renamed. Use a new database."
                    )
                conn.execute(
                    "UPDATE device SET store_id = ?, device_id = ?, timezone = ? WHERE id = 1",
                    (store_id, device_id, timezone),
                )
        self._identity = None
        return self.identity

    # -- settings -----------------------------------------------------------------------------

    def get_config(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_config(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- checkpoints --------------------------------------------------------------------------

    def _committed(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()
        self._checkpointer.dirty = True

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database file now (PASSIVE: never blocks a sale). Returns
        SQLite's (busy, wal_pages, checkpointed_pages)."""
        with self.checkpoints_paused():
            row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    @contextlib.contextmanager
    def checkpoints_paused(self) -> Iterator[None]:
        """No background checkpoint (and no second connection) while this lasts: a bulk load
        needs the file to itself to change journal mode."""
        if self._checkpointer is None:
            yield
            return
        with self._checkpointer.paused:
            yield

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        try:
            self.conn.close()
        finally:
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Checkpointer(threading.Thread):
    """Copies the WAL into the database file in the background, at a quiet moment.

    SQLite's own automatic checkpoint would run inside the commit that crosses the threshold,
    adding database-file writes and an fsync to that customer's sale. Here a PASSIVE checkpoint
    (it waits for nobody and blocks no writer) runs once the file has had no commit for
    ``quiet_s``: a checkpoint flushes megabytes to the disk, and a sale committed meanwhile
    waits behind that flush for its own fsync, so it is kept away from busy moments (a till
    ringing up sales, the sync worker marking a backlog). Commits of any connection count:
    the till's report themselves (``dirty``), the sync worker's show as the WAL file changing.
    While commits never pause, it still checkpoints every ``max_delay_s``; SQLite's fallback
    (FALLBACK_AUTOCHECKPOINT_PAGES) bounds the WAL if this thread cannot keep up. It uses its
    own short-lived connection, as a sqlite3 connection belongs to one thread, and none is
    open between checkpoints (a bulk load needs the file alone)."""

    def __init__(
        self,
        path: Path,
        *,
        tick_s: float = CHECKPOINT_TICK_S,
        quiet_s: float = CHECKPOINT_QUIET_S,
        max_delay_s: float = CHECKPOINT_MAX_DELAY_S,
    ) -> None:
        super().__init__(name="store-checkpoint", daemon=True)
        self.path = path
        self.wal_path = path.with_name(path.name + "-wal")
        self.tick_s = tick_s
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self.dirty = False
        self.checkpoints = 0  # completed rounds (tests and benchmarks read it)
        self.paused = threading.Lock()
        self._stopping = threading.Event()

    def _wal_state(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.wal_path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def run(self) -> None:
        seen = self._wal_state()
        first_change: float | None = None  # oldest commit not checkpointed yet
        last_change = 0.0
        while not self._stopping.wait(self.tick_s):
            now = time.monotonic()
            state = self._wal_state()
            if self.dirty or state != seen:
                self.dirty = False
                seen = state
                last_change = now
                if first_change is None:
                    first_change = now
            if first_change is None:
                continue
            if now - last_change < self.quiet_s and now - first_change < self.max_delay_s:
                continue
            with self.paused:
                if self._stopping.is_set():
                    break
                try:
                    conn = sqlite3.connect(self.path, timeout=1.0)
                    try:
                        busy, wal_pages, copied = conn.execute(
                            "PRAGMA wal_checkpoint(PASSIVE)"
                        ).fetchone()
                    finally:
                        conn.close()
                except sqlite3.Error:
                    continue  # try again next round; SQLite's fallback still bounds the WAL
                seen = self._wal_state()
                self.checkpoints += 1
                if busy == 0 and copied == wal_pages:
                    first_change = None
                # else a reader held back part of the WAL: the rest goes at the next chance

    def stop(self) -> None:
        self._stopping.set()
        if self.paused.acquire(timeout=5):  # let a checkpoint in progress finish
            self.paused.release()
        self.join(timeout=5)


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _take_lock(path: Path) -> IO[bytes]:
    try:
        lock_file = open(lock_path(path), "ab")  # noqa: SIM115 - held open while the store is
    except OSError as exc:
        raise StoreCorruptError(f"Cannot create the lock file beside {path}: {exc}") from exc
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StoreLockedError(
            f"Another `pos` already has {path} open on this machine. "
            "Close it first (one till program per database)."
        ) from None
    return lock_file


def open_store(path: Path, *, create: bool = True) -> Store:
    """Open (and, if `create`, make) the store database at `path`, migrated to the current schema.

    Raises StoreMissingError, StoreLockedError, StoreCorruptError; never a bare sqlite3 error for
    a bad file."""
    path = Path(path)
    if path.is_dir():
        raise StoreCorruptError(f"{path} is a folder, not a store database file.")
    if not path.exists():
        if not create:
            raise StoreMissingError(
                f"No store database at {path}. Run `pos init` (or `pos demo`) to create one."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not os.access(path, os.R_OK | os.W_OK):
        raise StoreCorruptError(
            f"The store database {path} cannot be read or written by this user. "
            "Check the file's owner and permissions."
        )
    lock_file = _take_lock(path)
    try:
        conn = _connect(path)
    except BaseException:
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        lock_file.close()
        raise
    return Store(path, conn, lock_file)


def _connect(path: Path) -> sqlite3.Connection:
    conn: sqlite3.Connection | None = None
    try:
        # isolation_level=None: no implicit transactions; Store.transaction() says BEGIN/COMMIT.
        # check_same_thread=False only so that a catalogue bulk load can hand its inserts to a
        # writer thread while this thread parses; the store is still used by one thread at a
        # time (SQLite is built serialized here, so even a mistake would not corrupt memory).
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        # The first statement reads the header: a non-database file fails here.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreCorruptError(f"Cannot switch {path} to WAL journaling (got {mode}).")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Reads through a memory map: a scan's lookup walks ~20 pages, and without the map each
        # is a read() call; under CPU contention those calls are what push p99 past 1 ms.
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        # checkpoints run in the background (_Checkpointer); SQLite's own only as a fallback
        conn.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA foreign_keys = OFF")  # the ledger outlives deleted products
        _migrate(conn, path)
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        err = translate(exc, path)
        if err is None:
            err = StoreCorruptError(f"The store database {path} cannot be opened: {exc}")
        raise err from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer version of pos (schema {version}, this program "
            f"knows {SCHEMA_VERSION}). Update pos on this till."
        )
    if version == 0:
        # a brand-new file has no tables; anything else at version 0 is not ours
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if tables:
            raise StoreCorruptError(
                f"{path} is an SQLite file but not a store database. Pick another path."
            )
    conn.execute("BEGIN IMMEDIATE")
    try:
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
