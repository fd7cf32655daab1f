"""The till's link to the sync engine: the background worker starts and stops with the app,
its status reaches the status bar as :class:`~pos.ui.messages.SyncStatusChanged`, and the sync
and end-of-day screens run their work on that same worker (one sync worker per store file).

The worker is a thread of its own (pos.services.sync.SyncWorker): the event loop of the screen
never waits for the network or for a sync transaction. The sync modules (HTTP client, protocol
models) are imported in that thread, once the till is on screen, so they never delay start-up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pos.ui.messages import SyncState, SyncStatusChanged

if TYPE_CHECKING:
    from textual.app import App

    from pos.services.sync import Job, SyncStatus, SyncWorker

T = TypeVar("T")


def sync_state(status: SyncStatus) -> SyncState:
    """What the status bar shows. The clock is flagged only beyond HQ's limit (5 minutes)."""
    from sync.protocol import CLOCK_SKEW_LIMIT_S

    offset = status.clock_offset_s
    skew = (
        timedelta(seconds=offset)
        if offset is not None and abs(offset) > CLOCK_SKEW_LIMIT_S
        else None
    )
    return SyncState(
        online=status.online,
        pending=status.pending,
        oldest_pending_age=status.oldest_pending_age,
        last_sync=status.last_success_at,
        clock_skew=skew,
    )


class SyncLink:
    """Owns the app's sync worker (created in its own thread)."""

    def __init__(self, app: App[Any], make_worker: Callable[[], SyncWorker]) -> None:
        self.app = app
        self.make_worker = make_worker
        self.worker: SyncWorker | None = None
        self.status: SyncStatus | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._wanted = False
        self._stopped = False

    def start(self) -> None:
        self.app.run_worker(
            self._run,
            thread=True,
            exclusive=True,
            group="sync",
            name="sync with HQ",
            exit_on_error=False,
        )

    def _run(self) -> None:
        worker = self.make_worker()
        worker.on_status = self._status_changed
        with self._lock:
            self.worker = worker
            stopped, wanted = self._stopped, self._wanted
        self._ready.set()
        if stopped:
            return
        if wanted:
            worker.sync_now()
        worker.run()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            worker = self.worker
        if worker is not None:
            worker.stop(timeout=5.0)

    def sync_now(self) -> None:
        with self._lock:
            worker = self.worker
            if worker is None:
                self._wanted = True
        if worker is not None:
            worker.sync_now()

    async def run(self, job: Job[T]) -> T:
        """Run a job on the sync worker and wait for it without blocking the screen."""
        if not self._ready.is_set():
            await asyncio.to_thread(self._ready.wait, 30.0)
        if self.worker is None:
            raise RuntimeError("the sync worker did not start")
        return await asyncio.wrap_future(self.worker.submit(job))

    def _status_changed(self, status: SyncStatus) -> None:  # on the worker's thread
        self.status = status
        self.app.post_message(SyncStatusChanged(sync_state(status)))


def start_sync(app: Any) -> SyncLink:
    """Start the sync worker of a till app (its settings say how often and, in tests, over
    which transport)."""
    settings = app.settings

    def make_worker() -> SyncWorker:
        from pos.services.sync import SyncWorker

        kwargs: dict[str, Any] = {
            "interval_s": settings.sync_interval_s,
            "transport_factory": settings.sync_transport,
        }
        if settings.clock is not None:
            kwargs["clock"] = settings.clock
        return SyncWorker(settings.db_path, **kwargs)

    link = SyncLink(app, make_worker)
    link.start()
    return link
