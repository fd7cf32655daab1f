"""Wake-ups from HQ: a long-lived ``GET /sync/v1/events`` (server-sent events) that says "your
orders stream changed", so the till pulls at once instead of at its next timer round.

A wake-up carries no data: it only triggers the usual pull, so nothing is lost when the event
stream fails. Then the listener reconnects with capped exponential backoff plus jitter, and the
till keeps pulling on its timer meanwhile. HQ sends an ``orders`` event right after every
connect, so a till that was cut off pulls as soon as it is back. A refused token (401/403)
stops the listener: retrying unchanged would fail again, and the sync engine reports it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from sync.client import USER_AGENT, tls_context
from sync.protocol import EVENTS_PATH

WAKE_EVENT = "orders"


@dataclass(frozen=True)
class WakeupConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 45.0
    """HQ pings every 15 s; a stream silent this long is dead and is opened again."""
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    backoff_jitter_s: float = 1.0


class WakeupListener:
    """Listens to HQ's event stream and calls ``on_wake(stream_name)`` for each wake-up.

    ``on_wake`` runs on the listener's event loop and must be quick and thread-safe (the till
    passes the sync worker's ``sync_now``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        on_wake: Callable[[str], None],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: str | Path | None = None,
        config: WakeupConfig | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.on_wake = on_wake
        self.transport = transport
        self.ca_file = ca_file
        self.config = config or WakeupConfig()
        self.connected = False
        self.connects = 0
        self.wakeups = 0
        self.last_error: str | None = None
        self.refused = False

    def _client(self) -> httpx.AsyncClient:
        cfg = self.config
        kwargs: dict[str, Any] = {}
        if self.transport is not None:
            kwargs["transport"] = self.transport
        elif self.base_url.startswith("https"):
            kwargs["verify"] = tls_context(self.ca_file)
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(cfg.read_timeout_s, connect=cfg.connect_timeout_s),
            **kwargs,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Listen until ``stop`` is set (or the task is cancelled, or HQ refuses the token)."""
        stop = stop or asyncio.Event()
        failures = 0
        async with self._client() as client:
            while not stop.is_set():
                listening = asyncio.create_task(self._listen_once(client))
                stopping = asyncio.create_task(stop.wait())
                try:
                    await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (stopping, listening):
                        if not task.done():
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                    self.connected = False
                if listening.cancelled():
                    return  # stopped while listening
                try:
                    listening.result()
                    failures = 0
                except (httpx.HTTPError, SSEError) as error:
                    self.last_error = f"{type(error).__name__}: {error}"
                    failures += 1
                if self.refused or stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._delay(failures))

    async def _listen_once(self, client: httpx.AsyncClient) -> None:
        async with aconnect_sse(client, "GET", EVENTS_PATH) as source:
            status = source.response.status_code
            if status in (401, 403):
                self.refused = True
                self.last_error = f"HQ refused this till's token ({status})"
                return
            source.response.raise_for_status()
            self.connected = True
            self.connects += 1
            self.last_error = None
            async for event in source.aiter_sse():
                if event.event == WAKE_EVENT:
                    self.wakeups += 1
                    self.on_wake(event.event)

    def _delay(self, failures: int) -> float:
        cfg = self.config
        if failures <= 0:
            base = cfg.backoff_initial_s  # HQ closed a healthy stream: come back soon
        else:
            base = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2.0 ** min(failures - 1, 30))
        return base + (random.uniform(0.0, cfg.backoff_jitter_s) if cfg.backoff_jitter_s else 0.0)


__all__ = ["WAKE_EVENT", "WakeupConfig", "WakeupListener"]
