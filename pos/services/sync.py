"""Sync with HQ as the till uses it: the HQ settings of a till, the engine built over the store
file, and the background worker that runs it on a timer and on "sync now".

The worker is a thread of its own with its own SQLite connection (a sqlite3 connection belongs
to its thread) and its own event loop for the HTTP calls; it never touches the screen. It
reports through a callback with a :class:`SyncStatus` value; the app turns that into a message.
Its transactions are short (one push batch marked, one pull page applied) and commit without an
fsync of their own; a sale that arrives meanwhile waits on the store file's write lock
(:func:`pos.store.db.write_lock`) and starts the moment the worker's transaction ends, so
syncing never blocks a sale for long. Checkpoints are left to the till's background
checkpointer, which runs them when the file is quiet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pos.store import Store
from pos.store._conn import DbLike
from pos.store.sync_state import SqliteSyncState, get_setting, open_companion, spool_dir_for
from sync.client import HQClient, RetryPolicy
from sync.engine import EngineConfig, EngineStatus, SnapshotProgressFn, SyncEngine, SyncReport
from sync.protocol import CLOCK_SKEW_LIMIT_S

log = logging.getLogger("pos.sync")

HQ_URL = "hq.url"
HQ_TOKEN = "hq.token"
HQ_CA_FILE = "hq.ca_file"
DEFAULT_INTERVAL_S = 30.0

Clock = Callable[[], datetime]
TransportFactory = Callable[[], httpx.AsyncBaseTransport]
T = TypeVar("T")
Job = Callable[["SyncEngine | None", sqlite3.Connection], Awaitable[T]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HQSettings:
    url: str
    token: str
    ca_file: str | None = None


def hq_settings(store: Store) -> HQSettings | None:
    """The till's HQ address and token, or None when it has not been set up for sync."""
    url, token = store.get_config(HQ_URL), store.get_config(HQ_TOKEN)
    if not url or not token:
        return None
    return HQSettings(url, token, store.get_config(HQ_CA_FILE) or None)


def save_hq_settings(
    store: Store, url: str | None = None, token: str | None = None, ca_file: str | None = None
) -> None:
    if url:
        store.set_config(HQ_URL, url.rstrip("/"))
    if token:
        store.set_config(HQ_TOKEN, token.strip())
    if ca_file:
        store.set_config(HQ_CA_FILE, ca_file)


def make_engine(
    db: DbLike,
    db_path: Path,
    settings: HQSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utc_now,
    config: EngineConfig | None = None,
    retry: RetryPolicy | None = None,
    on_snapshot_progress: SnapshotProgressFn | None = None,
) -> SyncEngine:
    """The engine over an open connection of the store file (of the calling thread). Given
    the Store itself, the engine may bulk-load a large snapshot; over a second connection
    beside a running till it writes only what changed."""
    state = SqliteSyncState(db, spool_dir_for(Path(db_path)), exclusive=isinstance(db, Store))
    client = HQClient(
        settings.url, settings.token, transport=transport, ca_file=settings.ca_file, retry=retry
    )
    return SyncEngine(
        client,
        state,
        state,
        state,
        clock=clock,
        config=config,
        on_snapshot_progress=on_snapshot_progress,
    )


async def sync_until_drained(engine: SyncEngine, *, rounds: int = 3) -> SyncReport:
    """Full rounds until the outbox is empty, HQ fails, or ``rounds`` is reached (a sale rung
    up meanwhile may need one more). Returns the last round's report."""
    report = await engine.sync_once()
    for _ in range(rounds - 1):
        if not report.ok or report.pending == 0:
            break
        report = await engine.sync_once()
    return report


# -- the status the till shows ----------------------------------------------------------------


@dataclass(frozen=True)
class SyncStatus:
    """What the status bar and the sync screen show. Times are timezone-aware."""

    configured: bool
    online: bool = False
    syncing: bool = False
    pending: int = 0
    oldest_pending_at: datetime | None = None
    rejected: int = 0
    last_success_at: datetime | None = None
    clock_offset_s: float | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    checked_at: datetime | None = None

    @property
    def clock_skewed(self) -> bool:
        return self.clock_offset_s is not None and abs(self.clock_offset_s) > CLOCK_SKEW_LIMIT_S

    @property
    def oldest_pending_age(self) -> timedelta | None:
        if self.oldest_pending_at is None or self.checked_at is None:
            return None
        return max(timedelta(0), self.checked_at - self.oldest_pending_at)

    @classmethod
    def of(cls, status: EngineStatus, now: datetime, syncing: bool = False) -> SyncStatus:
        return cls(
            configured=True,
            online=status.online,
            syncing=syncing,
            pending=status.pending,
            oldest_pending_at=status.oldest_pending_at,
            rejected=status.rejected,
            last_success_at=status.last_success_at,
            clock_offset_s=status.clock_offset_s,
            last_error=status.last_error,
            next_attempt_at=status.next_attempt_at,
            checked_at=now,
        )


# -- the background worker --------------------------------------------------------------------


class SyncWorker:
    """The engine on a timer and on demand, in a thread of its own.

    ``run()`` blocks until :meth:`stop` (the app runs it in a thread worker); ``start()`` runs it
    in a plain daemon thread (command-line tools)."""

    def __init__(
        self,
        db_path: Path,
        *,
        on_status: Callable[[SyncStatus], None] | None = None,
        on_report: Callable[[SyncReport], None] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        min_gap_s: float = 1.0,
        transport_factory: TransportFactory | None = None,
        clock: Clock = utc_now,
        config: EngineConfig | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.on_status = on_status
        self.on_report = on_report
        self.interval_s = interval_s
        self.min_gap_s = min_gap_s
        self.transport_factory = transport_factory
        self.clock = clock
        self.config = config
        self.retry = retry
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._settings_used: tuple[str, str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_wake: asyncio.Event | None = None
        self._jobs: queue.SimpleQueue[tuple[Job[Any], Future[Any]]] = queue.SimpleQueue()
        self.rounds = 0
        self.engine: SyncEngine | None = None  # the current one (its client counts requests)
        self.last_report: SyncReport | None = None
        self.status = SyncStatus(configured=False)

    # -- control (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="pos-sync", daemon=True)
        self._thread.start()

    def sync_now(self) -> None:
        """Run a round as soon as the current one (if any) ends."""
        self._wake.set()
        loop, event = self._loop, self._async_wake
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                loop.call_soon_threadsafe(event.set)

    def submit(self, job: Job[T]) -> Future[T]:
        """Run ``job(engine, connection)`` on the worker's thread, between two rounds (the
        end of day, reading the refused events...): one sync worker per store file, so no two
        engines ever push the same outbox at once. ``engine`` is None when the till has no HQ
        set up."""
        future: Future[T] = Future()
        self._jobs.put((job, future))
        self.sync_now()
        return future

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self.sync_now()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        conn = open_companion(self.db_path)
        try:
            asyncio.run(self._main(conn))
        finally:
            conn.close()

    async def _main(self, conn: sqlite3.Connection) -> None:
        self._loop = asyncio.get_running_loop()
        self._async_wake = asyncio.Event()
        engine: SyncEngine | None = None
        try:
            while not self._stop.is_set():
                # a "sync now" that comes while this round runs wakes the next one
                self._wake.clear()
                self._async_wake.clear()
                settings = _settings_of(conn)
                if settings is None:
                    if engine is not None:
                        await engine.client.aclose()
                        engine = None
                    await self._run_jobs(None, conn)
                    self._publish(SyncStatus(configured=False, checked_at=self.clock()))
                    await self._sleep(self.interval_s)
                    continue
                if engine is None or (settings.url, settings.token) != self._settings_used:
                    if engine is not None:
                        await engine.client.aclose()
                    self._settings_used = (settings.url, settings.token)
                    engine = make_engine(
                        conn,
                        self.db_path,
                        settings,
                        transport=self.transport_factory() if self.transport_factory else None,
                        clock=self.clock,
                        config=self.config,
                        retry=self.retry,
                    )
                    self.engine = engine
                await self._run_jobs(engine, conn)
                if self._stop.is_set():
                    break
                self._publish(replace(self.status, syncing=True))
                try:
                    report = await engine.sync_once()
                except Exception as error:  # a bug or a store error: the till keeps selling
                    log.exception("sync round failed")
                    self._publish(
                        replace(
                            self.status,
                            syncing=False,
                            online=False,
                            last_error=f"sync stopped by an error ({error}); it will retry",
                            checked_at=self.clock(),
                        )
                    )
                    await self._sleep(self.interval_s)
                    continue
                self.rounds += 1
                self.last_report = report
                if self.on_report is not None:
                    self.on_report(report)
                status = SyncStatus.of(engine.status(), self.clock())
                self._publish(status)
                await self._sleep(self._delay(report, status))
        finally:
            if engine is not None:
                await engine.client.aclose()
            self._loop = None
            while not self._jobs.empty():
                _, future = self._jobs.get_nowait()
                future.set_exception(RuntimeError("the sync worker has stopped"))

    async def _run_jobs(self, engine: SyncEngine | None, conn: sqlite3.Connection) -> None:
        while not self._jobs.empty():
            job, future = self._jobs.get_nowait()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(await job(engine, conn))
            except Exception as error:
                future.set_exception(error)

    def _delay(self, report: SyncReport, status: SyncStatus) -> float:
        if report.ok:
            return self.min_gap_s if status.pending else self.interval_s
        if status.next_attempt_at is not None:
            wait = (status.next_attempt_at - self.clock()).total_seconds()
            return max(self.min_gap_s, min(wait, self.interval_s * 10))
        return self.interval_s

    async def _sleep(self, seconds: float) -> None:
        if self._stop.is_set() or self._wake.is_set():
            return
        assert self._async_wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._async_wake.wait(), timeout=max(0.0, seconds))

    def _publish(self, status: SyncStatus) -> None:
        before, self.status = self.status, status
        if replace(before, checked_at=None) == replace(status, checked_at=None) and not (
            status.pending
        ):
            return  # nothing the till shows has changed (the age of a backlog does)
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:  # the screen may be closing; the engine goes on
                log.exception("status callback failed")


def _settings_of(conn: sqlite3.Connection) -> HQSettings | None:
    url, token = get_setting(conn, HQ_URL), get_setting(conn, HQ_TOKEN)
    if not url or not token:
        return None
    return HQSettings(url, token, get_setting(conn, HQ_CA_FILE) or None)
