"""The till's HTTP client of HQ's sync API (``/sync/v1``, see :mod:`sync.protocol`).

Every call has explicit timeouts and is retried a few times with exponential backoff and jitter
(stamina) when HQ cannot be reached or answers 5xx/429; what is still failing after that comes
out as :class:`~sync.errors.HQUnavailable`, and the engine keeps the attempt in the outbox and
tries again on its timer. A 4xx comes out as :class:`~sync.errors.HQRefused` at once.

The transport is the test seam: tests hand in ``httpx.ASGITransport`` over the real HQ app, or
a fault-injecting transport around it; production uses the network (TLS verification on, a CA
file configurable)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import httpx
import stamina
from pydantic import BaseModel, ValidationError

from sync.errors import (
    HQAuthError,
    HQRefused,
    HQUnavailable,
    ProtocolMismatch,
    SnapshotIncomplete,
)
from sync.protocol import (
    DEVICE_RECONCILIATION_PATH,
    PULL_PATH,
    PUSH_PATH,
    RECONCILIATION_PATH,
    SNAPSHOT_PATH,
    STATUS_PATH,
    DeviceReconciliationResponse,
    DeviceStatus,
    EodReceipt,
    EodReport,
    ErrorBody,
    PullRequest,
    PullResponse,
    PushResponse,
    ReconciliationResponse,
    SnapshotHeader,
    is_retryable,
    parse_snapshot_line,
)

M = TypeVar("M", bound=BaseModel)
USER_AGENT = "pos-sync/1"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is retried before the engine gives up until its next cycle."""

    attempts: int = 3
    timeout_s: float = 30.0
    wait_initial_s: float = 0.5
    wait_max_s: float = 5.0
    wait_jitter_s: float = 0.5

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(attempts=1)


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """Certificate verification on; a chain's own CA file when given."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class HQClient:
    """One till's connection to HQ. Use as an async context manager (or call :meth:`aclose`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        ca_file: str | Path | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if transport is not None:
            kwargs["transport"] = transport
        elif base_url.startswith("https"):
            kwargs["verify"] = tls_context(ca_file)
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            **kwargs,
        )
        self.retry = retry or RetryPolicy()
        self.requests = 0  # calls sent, including retries (benchmarks report it)
        self.bytes_sent = 0

    async def __aenter__(self) -> HQClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- calls ---------------------------------------------------------------------------------

    async def push(self, body: bytes) -> PushResponse:
        """Send one push (a :class:`~sync.protocol.PushRequest` as JSON bytes)."""
        return await self._call(
            "POST",
            PUSH_PATH,
            PushResponse,
            content=body,
            headers={"Content-Type": "application/json"},
        )

    async def pull(self, req: PullRequest) -> PullResponse:
        return await self._call(
            "POST",
            PULL_PATH,
            PullResponse,
            content=req.to_json().encode(),
            headers={"Content-Type": "application/json"},
        )

    async def status(self) -> DeviceStatus:
        return await self._call("GET", STATUS_PATH, DeviceStatus)

    async def reconciliation(
        self, business_day: date, *, after: str | None = None, limit: int = 5000
    ) -> ReconciliationResponse:
        params: dict[str, Any] = {"business_day": business_day.isoformat(), "limit": limit}
        if after is not None:
            params["after"] = after
        return await self._call("GET", RECONCILIATION_PATH, ReconciliationResponse, params=params)

    async def device_reconciliation(
        self, business_day: date, *, after: str | None = None, limit: int = 5000
    ) -> DeviceReconciliationResponse:
        """HQ's end-of-day figures for this till alone (its token says which)."""
        params: dict[str, Any] = {"business_day": business_day.isoformat(), "limit": limit}
        if after is not None:
            params["after"] = after
        return await self._call(
            "GET", DEVICE_RECONCILIATION_PATH, DeviceReconciliationResponse, params=params
        )

    async def send_eod(self, report: EodReport) -> EodReceipt:
        """Tell HQ what the till concluded at end of day (``hq report`` shows it)."""
        return await self._call(
            "POST",
            RECONCILIATION_PATH,
            EodReceipt,
            content=report.to_json().encode(),
            headers={"Content-Type": "application/json"},
        )

    async def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        async for attempt in self._retrying():
            with attempt:
                return await self._once(method, path, model, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover - stamina re-raises

    def _retrying(self) -> Any:
        r = self.retry
        return stamina.retry_context(
            on=HQUnavailable,
            attempts=r.attempts,
            timeout=r.timeout_s,
            wait_initial=r.wait_initial_s,
            wait_max=r.wait_max_s,
            wait_jitter=r.wait_jitter_s,
        )

    async def _once(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        self.requests += 1
        content = kwargs.get("content")
        if isinstance(content, bytes):
            self.bytes_sent += len(content)
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise HQUnavailable(_unreachable(self.http.base_url, error)) from error
        check(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise ProtocolMismatch(
                f"HQ's answer to {path} could not be read ({error.error_count()} problem(s)); "
                "HQ may run another protocol version. Tell support."
            ) from error

    # -- snapshots -----------------------------------------------------------------------------

    async def download_snapshot(
        self, stream: str, dest: Path, progress: Callable[[int], None] | None = None
    ) -> SnapshotHeader:
        """Download a stream's snapshot into ``dest`` (NDJSON: header, rows, end), resuming a
        partial file left by an earlier, interrupted download. Returns the FIRST header (whose
        cursor is the one to continue from)."""
        async for attempt in self._retrying():
            with attempt:
                return await self._download_once(stream, dest, progress)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _download_once(
        self, stream: str, dest: Path, progress: Callable[[int], None] | None
    ) -> SnapshotHeader:
        state = inspect_spool(dest)
        if state.complete and state.header is not None:
            return state.header
        params = {} if state.last_key is None else {"after": state.last_key}
        rows = state.rows
        self.requests += 1
        try:
            async with self.http.stream(
                "GET", f"{SNAPSHOT_PATH}/{stream}", params=params
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    check(response)
                with open(dest, "ab") as out:
                    skip_header = state.header is not None
                    if not skip_header:
                        rows -= 1  # the header line is not a row
                    pending = b""
                    async for chunk in response.aiter_bytes():
                        if skip_header:
                            pending += chunk
                            cut = pending.find(b"\n")
                            if cut < 0:
                                continue
                            chunk, pending, skip_header = pending[cut + 1 :], b"", False
                        out.write(chunk)
                        rows += chunk.count(b"\n")
                        if progress is not None:
                            progress(max(0, rows))
                    out.flush()
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise HQUnavailable(_unreachable(self.http.base_url, error)) from error
        except httpx.TransportError as error:
            raise SnapshotIncomplete(
                f"The download of HQ's {stream} snapshot was cut after {max(0, rows):,} rows; "
                "it will resume from there."
            ) from error
        state = inspect_spool(dest)
        if not state.complete or state.header is None:
            raise SnapshotIncomplete(
                f"HQ's {stream} snapshot ended early after {state.rows:,} rows; it will resume."
            )
        return state.header


@dataclass(frozen=True)
class SpoolState:
    header: SnapshotHeader | None
    last_key: str | None
    rows: int
    complete: bool


def inspect_spool(path: Path) -> SpoolState:
    """Where a (possibly partial) snapshot file stands. A torn last line is cut off, so the
    file always ends at a line boundary and appending the rest of the body continues it."""
    empty = SpoolState(None, None, 0, False)
    if not path.exists():
        return empty
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        tail_start = max(0, size - (1 << 20))
        f.seek(tail_start)
        tail = f.read()
        cut = tail.rfind(b"\n")
        if cut < 0:  # not even a whole header line
            f.truncate(0)
            return empty
        end = tail_start + cut + 1
        if end < size:
            f.truncate(end)
        f.seek(0)
        first = f.readline()
        try:
            header = parse_snapshot_line(first)
        except (ValueError, ValidationError):
            header = None
        if not isinstance(header, SnapshotHeader):
            f.truncate(0)
            return empty
        if end == len(first):
            return SpoolState(header, header.after, 0, False)
        last = tail[:cut].rsplit(b"\n", 1)[-1]
        data = json.loads(last)
    lines = _count_lines(path)
    if "end" in data:
        return SpoolState(header, None, lines - 2, True)
    return SpoolState(header, str(data["key"]), lines - 1, False)


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def check(response: httpx.Response) -> None:
    """Raise the error an HQ answer stands for (nothing for a 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    code, message, detail = "http_error", response.reason_phrase, None
    try:
        body = ErrorBody.model_validate_json(response.content)
        code, message, detail = body.error.code, body.error.message, body.error.detail
    except (ValidationError, ValueError):
        pass
    if is_retryable(status) or status >= 500:
        raise HQUnavailable(
            f"HQ cannot take this now ({status} {code}: {message}); the till will retry.",
            status_code=status,
        )
    cls = HQAuthError if status in (401, 403) else HQRefused
    hint = (
        " Check the till's HQ token (pos sync --help)."
        if cls is HQAuthError
        else " Tell support; resending the same request will fail again."
    )
    raise cls(
        f"HQ refused the request ({status} {code}: {message}).{hint}",
        status_code=status,
        code=code,
        detail=detail,
    )


def _unreachable(base_url: httpx.URL, error: httpx.TransportError) -> str:
    kind = type(error).__name__
    return f"HQ at {base_url} cannot be reached ({kind}); sales go on and sync later."
