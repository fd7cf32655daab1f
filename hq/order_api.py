"""HTTP for online orders: the e-commerce platforms' intake (``/orders/v1``), the stores'
wake-ups (``GET /sync/v1/events``, server-sent events) and the periodic order duty.

Intake: ``POST /orders/v1`` with ``Authorization: Bearer <platform key>`` (``hq platform add``)
and an :class:`hq.orders.OrderIntake` body; 201 with the order (its timeline, pickup code and
QR text) when created, 200 with the same order when the same body comes again, 409
``conflict`` when another body comes under the same ``platform_order_id``.
``GET /orders/v1/{order_id}``: the order and its full timeline (a platform sees its own
orders only).

The platform's side, by its own order id (:mod:`hq.platform_orders`, :mod:`hq.notify`):
``GET /orders/v1/platform-orders/{platform_order_id}`` (status and timeline), ``POST
.../{platform_order_id}/cancel`` (200 cancelled, 202 cancel requested from the store, 409
``already_fulfilled``) and ``GET /orders/v1/notifications?after=<seq>`` (what the customers
should hear, in commit order, at least once with a stable id).

Wake-ups: a store's till keeps ``GET /sync/v1/events`` open (device token). It gets an
``orders`` event at once (so it pulls after every reconnect) and then whenever its orders
stream changed. An event is only a wake-up: the till pulls the orders stream as usual, and
pull alone stays correct when the event stream fails.

How a change reaches the open stream: every order transaction announces the stores it
touched after its commit (:func:`hq.orders.listen`), which wakes their streams in this
process at once. HQ may run several processes (``hq serve --workers N``) and a change
committed by another process is not announced here, so each stream also reads its store's
stream head every ``sse_poll_seconds`` (default 5 s; one indexed read per open stream) and
sends an event when it moved: across processes a wake-up takes at most that long."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from hq import ingest, notify, orders, platform_orders, webhooks
from hq.admin import hash_token
from hq.db import Database
from hq.dispatch import OrderSettings
from hq.errors import HQError, NotFound, Unauthorized
from sync.protocol import EVENTS_PATH

log = logging.getLogger("hq.orders")
ORDERS_PREFIX = "/orders/v1"
NOTIFICATIONS_PATH = ORDERS_PREFIX + "/notifications"
PLATFORM_ORDERS = ORDERS_PREFIX + "/platform-orders"


class MethodNotAllowed(HQError):
    status_code = 405
    code = "method_not_allowed"


class Wakeups:
    """Per store, the open event streams of this process; :meth:`wake` may be called from
    any thread (order transactions run on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(set)
        )

    def subscribe(self, store_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        item = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting[store_id].add(item)
        return item

    def unsubscribe(
        self, store_id: str, item: tuple[asyncio.AbstractEventLoop, asyncio.Event]
    ) -> None:
        with self._lock:
            self._waiting[store_id].discard(item)
            if not self._waiting[store_id]:
                del self._waiting[store_id]

    def wake(self, store_ids: set[str]) -> None:
        with self._lock:
            items = [it for s in store_ids for it in self._waiting.get(s, ())]
        for loop, event in items:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    def listeners(self, store_id: str) -> int:
        with self._lock:
            return len(self._waiting.get(store_id, ()))


def _bearer(request: Request, who: str) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(f"send the {who} as 'Authorization: Bearer <key>'")
    return token.strip()


def install(
    app: FastAPI,
    db: Database,
    *,
    clock: Callable[[], datetime],
    settings: OrderSettings | None = None,
    run_ticks: bool = True,
) -> Wakeups:
    """Add the order routes to ``app``; with ``run_ticks`` the app's lifespan runs
    :func:`hq.orders.tick` every ``tick_seconds`` (under uvicorn; in-process test clients do
    not run the lifespan and call ``tick`` themselves)."""
    wakeups = Wakeups()
    app.state.order_wakeups = wakeups
    stop_listening = orders.listen(db, wakeups.wake)
    poll_s = (settings or OrderSettings()).sse_poll_seconds

    async def platform(request: Request) -> str:
        key = _bearer(request, "platform's API key")
        return await run_in_threadpool(orders.platform_of_key, db, key)

    async def device(request: Request) -> ingest.DeviceAuth:
        digest = hash_token(_bearer(request, "till's token"))

        def lookup() -> ingest.DeviceAuth:
            with db.read() as conn:
                return ingest.authenticate(conn, digest)

        return await run_in_threadpool(lookup)

    @app.post(ORDERS_PREFIX)
    async def submit_order(request: Request) -> JSONResponse:
        name = await platform(request)
        from hq.app import parse  # one body parser, one error shape

        intake = await run_in_threadpool(parse, orders.OrderIntake, await request.body())

        def run() -> tuple[dict[str, Any], bool]:
            order_id, created = orders.submit(db, name, intake, now=clock(), settings=settings)
            return orders.view(db, order_id), created

        body, created = await run_in_threadpool(run)
        return JSONResponse(body, status_code=201 if created else 200)

    # the platform's own calls (before /{order_id}, which would match their paths)

    @app.get(NOTIFICATIONS_PATH)
    async def notifications(
        request: Request,
        after: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=notify.MAX_FEED_PAGE),
    ) -> JSONResponse:
        name = await platform(request)
        body = await run_in_threadpool(notify.feed, db, name, after, limit)
        return JSONResponse(body)

    @app.get(PLATFORM_ORDERS + "/{platform_order_id:path}/cancel")
    async def cancel_needs_post(request: Request, platform_order_id: str) -> JSONResponse:
        await platform(request)
        raise MethodNotAllowed('cancel with POST (an optional body {"reason": "..."})')

    @app.post(PLATFORM_ORDERS + "/{platform_order_id:path}/cancel")
    async def cancel_order(request: Request, platform_order_id: str) -> JSONResponse:
        name = await platform(request)
        from hq.app import parse

        raw = await request.body()
        asked = (
            await run_in_threadpool(parse, platform_orders.CancelRequest, raw)
            if raw.strip()
            else platform_orders.CancelRequest()
        )

        def run() -> tuple[platform_orders.CancelResult, dict[str, Any]]:
            done = platform_orders.cancel(
                db, name, platform_order_id, reason=asked.reason, now=clock(), settings=settings
            )
            return done, platform_orders.status(db, name, platform_order_id)

        done, order = await run_in_threadpool(run)
        body = {
            "status": done.status,
            "order_id": done.order_id,
            "platform_order_id": platform_order_id,
            "waiting_for": list(done.waiting_for),
            "order": order,
        }
        return JSONResponse(body, status_code=202 if done.status == "cancel_requested" else 200)

    @app.get(PLATFORM_ORDERS + "/{platform_order_id:path}")
    async def platform_order(request: Request, platform_order_id: str) -> JSONResponse:
        name = await platform(request)
        body = await run_in_threadpool(platform_orders.status, db, name, platform_order_id)
        return JSONResponse(body)

    @app.get(ORDERS_PREFIX + "/{order_id}")
    async def show_order(request: Request, order_id: str) -> JSONResponse:
        name = await platform(request)
        body = await run_in_threadpool(orders.view, db, order_id)
        if body["platform"] != name:
            raise NotFound(f"no order {order_id}")
        return JSONResponse(body)

    @app.get(EVENTS_PATH)
    async def events(request: Request) -> EventSourceResponse:
        dev = await device(request)
        return EventSourceResponse(_stream(dev.store_id), ping=15)

    async def _stream(store_id: str) -> AsyncIterator[dict[str, str]]:
        item = wakeups.subscribe(store_id)
        _loop, woken = item
        try:
            sent: int | None = None
            while True:
                woken.clear()
                head = await run_in_threadpool(orders.store_head, db, store_id)
                if head != sent:
                    sent = head
                    yield {"event": "orders", "data": json.dumps({"head": head})}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=poll_s)
        finally:
            wakeups.unsubscribe(store_id, item)

    if run_ticks:
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(a: Any) -> AsyncIterator[Any]:
            tasks = [asyncio.create_task(_ticks()), asyncio.create_task(_webhooks())]
            try:
                async with inner(a) as state:
                    yield state
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                stop_listening()

        app.router.lifespan_context = lifespan

    async def _ticks() -> None:
        every = (settings or OrderSettings()).tick_seconds
        while True:
            await asyncio.sleep(every)
            try:
                await run_in_threadpool(orders.tick, db, now=clock(), settings=settings)
            except Exception:  # the duty runs again next time; the service stays up
                log.exception("order tick failed")

    async def _webhooks() -> None:
        """Platforms' webhooks (:mod:`hq.webhooks`); ``app.state.webhook_settings`` may
        replace the defaults before the app starts."""
        hooks: webhooks.WebhookSettings = getattr(
            app.state, "webhook_settings", webhooks.WebhookSettings()
        )
        async with httpx.AsyncClient(timeout=hooks.timeout_s) as client:
            while True:
                await asyncio.sleep(hooks.poll_s)
                try:
                    await webhooks.run_once(db, client, now=clock(), settings=hooks)
                except Exception:  # delivery runs again next time; the service stays up
                    log.exception("webhook delivery failed")

    return wakeups


__all__ = ["NOTIFICATIONS_PATH", "ORDERS_PREFIX", "PLATFORM_ORDERS", "Wakeups", "install"]
