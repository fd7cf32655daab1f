"""HQ's wake-ups for a running till: the event-stream listener (sync.wakeup) in a thread of its
own, asking the sync worker for a round whenever HQ says this store's orders changed. New online
orders then reach the inbox within seconds instead of at the next timer round; when the stream
is down, the worker's timer still pulls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

import httpx

from pos.services.sync import HQSettings
from sync.wakeup import WakeupConfig, WakeupListener

log = logging.getLogger("pos.wakeups")


class WakeupThread:
    def __init__(
        self,
        settings: HQSettings,
        on_wake: Callable[[], None],
        *,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        config: WakeupConfig | None = None,
    ) -> None:
        self.settings = settings
        self.on_wake = on_wake
        self.transport_factory = transport_factory
        self.config = config
        self.listener: WakeupListener | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    @property
    def connected(self) -> bool:
        return self.listener is not None and self.listener.connected

    def start(self) -> None:
        """Listen in a daemon thread of its own."""
        self._thread = threading.Thread(target=self.run, name="pos-wakeups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._ready.wait(timeout)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """Listen in the calling thread until :meth:`stop` (a till runs it in a thread worker)."""
        self._thread = self._thread or threading.current_thread()
        try:
            asyncio.run(self._main())
        except Exception:  # the timer keeps syncing; only the quick wake-ups are lost
            log.exception("HQ wake-up listener stopped")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        if self._stopping.is_set():
            return
        s = self.settings
        self.listener = WakeupListener(
            s.url,
            s.token,
            lambda _stream: self.on_wake(),
            transport=self.transport_factory() if self.transport_factory else None,
            ca_file=s.ca_file,
            config=self.config,
        )
        await self.listener.run(self._stop)
