"""The HQ HTTP service (FastAPI): the sync API under ``/sync/v1`` (see :mod:`sync.protocol`
for what each call means) plus ``/healthz``.

Bodies are read raw and validated with the protocol models directly (``model_validate_json``),
so every failure takes one path to one JSON error shape. Request bodies larger than
``max_body`` get 413 before anything is parsed; a database that is down or busy gives 503 (the
client retries); wrong input gives a 4xx; nothing a client sends should produce a 500."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hq import ingest, order_api, service
from hq.admin import hash_token
from hq.db import Database, utcnow
from hq.dispatch import OrderSettings
from hq.errors import HQError, Invalid, Unauthorized
from sync.protocol import (
    API_PREFIX,
    DEVICE_RECONCILIATION_PATH,
    MAX_BODY_BYTES,
    MAX_PUSH_BATCH,
    SNAPSHOT_MEDIA_TYPE,
    EodReport,
    ErrorBody,
    PullRequest,
    PushRequest,
)

log = logging.getLogger("hq")
M = TypeVar("M", bound=BaseModel)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class MalformedJSON(HQError):
    status_code = 400
    code = "malformed_json"


def error_response(status: int, code: str, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(ErrorBody.of(code, message, detail).to_dict(), status_code=status)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not the client sent a
    Content-Length, and hands the app the body it buffered (at most ``limit`` bytes)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = error_response(
            413,
            "payload_too_large",
            f"a request body may be at most {self.limit} bytes",
            {"max": self.limit},
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "bad_request", "Content-Length is not a number")(
                        scope, receive, send
                    )
                    return
                if declared > self.limit:
                    await too_big(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    db: Database,
    *,
    max_body: int = MAX_BODY_BYTES,
    max_batch: int = MAX_PUSH_BATCH,
    clock: Callable[[], datetime] = utcnow,
    order_settings: OrderSettings | None = None,
) -> FastAPI:
    """The HQ app over ``db``. ``clock`` is HQ's time (tests move it). Online orders (intake,
    wake-ups, the periodic duty): :mod:`hq.order_api`."""
    app = FastAPI(title="HQ", version="1", docs_url="/docs", redoc_url=None)
    app.state.db = db

    # --- errors: one JSON shape ---------------------------------------------------------------

    @app.exception_handler(HQError)
    async def _hq_error(_req: Request, error: HQError) -> JSONResponse:
        if error.status_code >= 500:
            log.warning("%s: %s", error.code, error.message)
        return error_response(error.status_code, error.code, error.message, error.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "validation_error", "the request is not valid", _errors(error.errors())
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(
            500, "internal_error", "HQ failed unexpectedly; the request was not applied"
        )

    # --- helpers ------------------------------------------------------------------------------

    async def device(request: Request) -> ingest.DeviceAuth:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send the till's token as 'Authorization: Bearer <token>'")
        digest = hash_token(token.strip())

        def lookup() -> ingest.DeviceAuth:
            with db.read() as conn:
                return ingest.authenticate(conn, digest)

        return await run_in_threadpool(lookup)

    async def body_as(request: Request, model: type[M]) -> M:
        # parsed on a worker thread: a 500-event body takes milliseconds, which the event
        # loop should spend moving other requests' bytes
        return await run_in_threadpool(parse, model, await request.body())

    # --- endpoints ----------------------------------------------------------------------------

    @app.post(f"{API_PREFIX}/push")
    async def push(request: Request) -> Response:
        dev = await device(request)
        req = await body_as(request, PushRequest)
        res = await run_in_threadpool(ingest.push, db, dev, req, now=clock(), max_batch=max_batch)
        return Response(res.to_json(), media_type="application/json")

    @app.post(f"{API_PREFIX}/pull")
    async def pull(request: Request) -> Response:
        dev = await device(request)
        req = await body_as(request, PullRequest)
        res = await run_in_threadpool(service.pull, db, dev, req, now=clock())
        return Response(res.to_json(), media_type="application/json")

    @app.get(f"{API_PREFIX}/snapshot/{{stream}}")
    async def snapshot(request: Request, stream: str, after: str | None = None) -> Response:
        dev = await device(request)
        body = await run_in_threadpool(service.snapshot, db, dev, stream, after)
        return StreamingResponse(body, media_type=SNAPSHOT_MEDIA_TYPE)

    @app.get(f"{API_PREFIX}/status")
    async def status(request: Request) -> Response:
        dev = await device(request)
        res = await run_in_threadpool(service.status, db, dev, now=clock())
        return Response(res.to_json(), media_type="application/json")

    @app.get(f"{API_PREFIX}/reconciliation")
    async def reconciliation(
        request: Request,
        business_day: date,
        after: str | None = None,
        limit: int = Query(5000, ge=1, le=20000),
    ) -> Response:
        dev = await device(request)
        res = await run_in_threadpool(
            service.reconciliation, db, dev, business_day, after=after, limit=limit, now=clock()
        )
        return Response(res.to_json(), media_type="application/json")

    @app.get(DEVICE_RECONCILIATION_PATH)
    async def device_reconciliation(
        request: Request,
        business_day: date,
        after: str | None = None,
        limit: int = Query(5000, ge=1, le=20000),
    ) -> Response:
        dev = await device(request)
        res = await run_in_threadpool(
            service.device_reconciliation,
            db,
            dev,
            business_day,
            after=after,
            limit=limit,
            now=clock(),
        )
        return Response(res.to_json(), media_type="application/json")

    @app.post(f"{API_PREFIX}/reconciliation")
    async def eod_report(request: Request) -> Response:
        dev = await device(request)
        req = await body_as(request, EodReport)
        res = await run_in_threadpool(service.record_eod, db, dev, req, now=clock())
        return Response(res.to_json(), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        def ping() -> None:
            with db.read() as conn:
                conn.execute(text("SELECT 1"))

        await run_in_threadpool(ping)
        return {"ok": True, "database": db.dialect}

    order_api.install(app, db, clock=clock, settings=order_settings)
    app.add_middleware(BodyLimit, limit=max_body)
    return app


def parse(model: type[M], raw: bytes) -> M:
    """A request body as a protocol model, or the 400/422 that says why not."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJSON("the request body is not valid JSON", _errors(errors)) from None
        raise Invalid(
            f"the request body is not a valid {model.__name__}", _errors(errors)
        ) from None


def _errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input (which may be huge or not JSON)."""
    return [
        {
            "loc": [str(x) for x in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in list(errors)[:20]
    ]


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and ``hq serve --workers N``: the database comes
    from ``HQ_DB`` (a SQLite path or a DSN)."""
    return create_app(Database.from_env())
