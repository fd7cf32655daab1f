"""Sync with HQ as the till uses it: the HQ settings of a till, the engine built over the store
file, and the background worker that runs it on a timer and on "sync now".

The worker is a thread of its own with its own SQLite connection (a sqlite3 connection belongs
to its thread) and its own event loop for the HTTP calls; it never touches the screen. It
reports through a callback with a :class:`SyncStatus` value; the app turns that into a message.
Its transactions are short (one push batch marked, one pull page applied), and SQLite's busy
timeout makes a sale wait for them rather than fail, so syncing never blocks a sale for long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    """The engine over an open connection of the store file (of the calling thread)."""
    state = SqliteSyncState(db, spool_dir_for(Path(db_path)))
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_wake: asyncio.Event | None = None
        self.rounds = 0
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
                settings = _settings_of(conn)
                if settings is None:
                    self._publish(SyncStatus(configured=False, checked_at=self.clock()))
                    await self._sleep(self.interval_s)
                    continue
                if engine is None or engine.client.http.base_url != settings.url.rstrip("/"):
                    if engine is not None:
                        await engine.client.aclose()
                    engine = make_engine(
                        conn,
                        self.db_path,
                        settings,
                        transport=self.transport_factory() if self.transport_factory else None,
                        clock=self.clock,
                        config=self.config,
                        retry=self.retry,
                    )
                self._publish(replace(self.status, syncing=True))
                self._wake.clear()
                self._async_wake.clear()
                report = await engine.sync_once()
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
        self.status = status
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
