"""A network between a till and the real HQ app that fails the ways real networks do.

It wraps httpx's ASGI transport (the HQ app in-process) and, per request, can drop the request
before HQ sees it, cut the response after HQ has committed, send the request twice (HQ sees a
duplicate), answer 503 as a proxy would, delay it, or cut a streamed body half way."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import httpx

from sync.protocol import ErrorBody

Fault = Literal[
    "ok",
    "drop_request",
    "drop_response",
    "duplicate",
    "unavailable",
    "delay",
    "cut_stream",
    "partition",
]
FAULTS: tuple[Fault, ...] = (
    "drop_request",
    "drop_response",
    "duplicate",
    "unavailable",
    "delay",
    "cut_stream",
)


@dataclass
class FaultyTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    plan: deque[Fault] = field(default_factory=deque)
    """Faults for the next requests, in order; then ``mode`` for every other one."""
    mode: Fault = "ok"
    log: list[tuple[str, str, Fault]] = field(default_factory=list)
    """(method, path with query, fault) of every request."""
    hq_calls: int = 0
    """Requests that reached HQ (a duplicate counts twice)."""

    def fail_next(self, *faults: Fault) -> None:
        self.plan.extend(faults)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault: Fault = self.plan.popleft() if self.plan else self.mode
        self.log.append((request.method, request.url.raw_path.decode(), fault))
        if fault in ("drop_request", "partition"):
            raise httpx.ConnectError("connection refused (test network)", request=request)
        if fault == "unavailable":
            body = ErrorBody.of("unavailable", "a proxy in front of HQ is overloaded")
            return httpx.Response(503, json=body.to_dict(), request=request)
        if fault == "delay":
            await asyncio.sleep(0.01)
        if fault == "duplicate":
            await request.aread()
            copy = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.content
            )
            first = await self._forward(copy)
            await first.aread()
            await first.aclose()
        response = await self._forward(request)
        if fault == "drop_response":
            await response.aread()  # HQ has finished (and committed) by now
            await response.aclose()
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        if fault == "cut_stream":
            body = await response.aread()
            await response.aclose()
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=_CutStream(body[: max(1, len(body) // 2)], request),
                request=request,
            )
        return response

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        self.hq_calls += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CutStream(httpx.AsyncByteStream):
    def __init__(self, part: bytes, request: httpx.Request) -> None:
        self.part = part
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.part
        raise httpx.RemoteProtocolError("peer closed connection mid-body", request=self.request)
