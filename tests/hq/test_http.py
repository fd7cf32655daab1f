"""Bad requests get a clear 4xx with the one JSON error shape, never a 500; a database that is
down or busy gives 503; a backup restore shows as a lower last_applied_seq; and the service
works over a real socket."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from hq.app import create_app
from hq.db import Database
from sync import protocol as p
from tests.hq.support import T0, Till, register, seed_catalog


def error_code(r: httpx.Response) -> str:
    return p.ErrorBody.model_validate_json(r.content).error.code


@pytest.fixture
async def till_client(db: Database, client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    seed_catalog(db, ["A"])
    return register(db, "S1"), client


async def test_missing_and_bad_tokens_are_401(till_client) -> None:  # type: ignore[no-untyped-def]
    till, client = till_client
    body = till.push_body([till.sale([("A", 1, 100)])])
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {till.token}"},
        {"Authorization": "Bearer "},
    ):
        r = await client.post(p.PUSH_PATH, json=body, headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = await client.get(p.STATUS_PATH)
    assert r.status_code == 401 and error_code(r) == "unauthorized"


async def test_an_unknown_token_is_401_whatever_the_body(till_client) -> None:  # type: ignore[no-untyped-def]
    _till, client = till_client
    other = Till("S9", "till-9", "nope")  # events of a device HQ does not know
    for body in (b"{not json", b"[1, 2]", other.push_body([other.sale([("A", 1, 100)])])):
        kw = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = await client.post(p.PUSH_PATH, headers={"Authorization": "Bearer nope"}, **kw)
        assert r.status_code == 401 and error_code(r) == "unauthorized", r.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"[1, 2]", 422, "validation_error"),
        (b'{"device_time": "2026-11-22T10:00:00+00:00", "batch": "x"}', 422, "validation_error"),
        (b'{"device_time": "2026-11-22T10:00:00", "batch": []}', 422, "validation_error"),
        (
            b'{"device_time": "2026-11-22T10:00:00Z", "batch": [{"event_id": "x", "seq": "one"}]}',
            422,
            "validation_error",
        ),
        (
            b'{"device_time": "2026-11-22T10:00:00Z", "batch": [], "pending": -1}',
            422,
            "validation_error",
        ),
    ],
)
async def test_malformed_push_bodies_get_4xx(
    till_client, body: bytes, status: int, code: str
) -> None:  # type: ignore[no-untyped-def]
    till, client = till_client
    r = await client.post(
        p.PUSH_PATH, content=body, headers={**till.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert error_code(r) == code


async def test_out_of_order_batches_are_refused(till_client) -> None:  # type: ignore[no-untyped-def]
    till, client = till_client
    e1 = till.sale([("A", 1, 100)])
    e2 = till.sale([("A", 1, 100)])
    r = await client.post(p.PUSH_PATH, json=till.push_body([e2, e1]), headers=till.headers)
    assert r.status_code == 422 and error_code(r) == "batch_out_of_order"


async def test_oversized_bodies_get_413_with_or_without_a_length(db: Database) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    app = create_app(db, max_body=2000)
    big = b'{"device_time": "2026-11-22T10:00:00Z", "batch": [], "pad": "' + b"x" * 5000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hq"
    ) as client:
        r = await client.post(p.PUSH_PATH, content=big, headers=till.headers)
        assert r.status_code == 413 and error_code(r) == "payload_too_large"
        r = await client.post(p.PUSH_PATH, content=chunks(), headers=till.headers)
        assert r.status_code == 413 and error_code(r) == "payload_too_large"
        ok = await client.post(p.PUSH_PATH, json=till.push_body([]), headers=till.headers)
        assert ok.status_code == 200


async def test_other_bad_requests_are_json_4xx(till_client) -> None:  # type: ignore[no-untyped-def]
    till, client = till_client
    checks = [
        (client.get("/sync/v1/nothing-here", headers=till.headers), 404, "not_found"),
        (client.get(p.PUSH_PATH, headers=till.headers), 405, "method_not_allowed"),
        (
            client.get(
                p.RECONCILIATION_PATH, params={"business_day": "22/11/2026"}, headers=till.headers
            ),
            422,
            "validation_error",
        ),
        (client.get(p.RECONCILIATION_PATH, headers=till.headers), 422, "validation_error"),
        (
            client.get(
                p.RECONCILIATION_PATH,
                params={"business_day": "2026-11-22", "limit": 0},
                headers=till.headers,
            ),
            422,
            "validation_error",
        ),
        (
            client.post(
                p.PULL_PATH,
                json={"device_time": T0.isoformat(), "cursors": {"catalog": -1}},
                headers=till.headers,
            ),
            422,
            "validation_error",
        ),
        (
            client.post(
                p.PULL_PATH,
                json={"device_time": T0.isoformat(), "cursors": {"x": 0}},
                headers=till.headers,
            ),
            422,
            "validation_error",
        ),
        (
            client.post(
                p.PULL_PATH,
                json={"device_time": T0.isoformat(), "cursors": {}, "limit": 10**9},
                headers=till.headers,
            ),
            422,
            "validation_error",
        ),
    ]
    for call, status, code in checks:
        r = await call
        assert r.status_code == status, (r.request.url, r.text)
        assert error_code(r) == code


async def test_a_busy_database_answers_503_and_the_retry_succeeds(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "hq.db"), busy_timeout_ms=100)
    db.create_schema()
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    app = create_app(db)
    blocker = sqlite3.connect(tmp_path / "hq.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # someone else holds the write lock
    body = till.push_body([till.sale([("A", 1, 100)])])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hq"
    ) as client:
        r = await client.post(p.PUSH_PATH, json=body, headers=till.headers)
        assert r.status_code == 503 and error_code(r) == "unavailable"
        assert p.is_retryable(r.status_code)
        blocker.rollback()
        r = await client.post(p.PUSH_PATH, json=body, headers=till.headers)
        assert r.status_code == 200
        assert p.PushResponse.model_validate_json(r.content).results[0].status == "applied"
    blocker.close()
    db.dispose()


async def test_a_database_that_is_down_answers_503() -> None:
    db = Database("postgresql+psycopg://postgres@127.0.0.1:9/none")  # nothing listens there
    app = create_app(db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hq"
    ) as client:
        r = await client.get(p.STATUS_PATH, headers={"Authorization": "Bearer hqt_x"})
        assert r.status_code == 503 and error_code(r) == "unavailable"
        r = await client.get("/healthz")
        assert r.status_code == 503
    db.dispose()


async def test_restoring_hq_from_a_backup_lowers_last_applied_seq(tmp_path: Path) -> None:
    path = tmp_path / "hq.db"
    db = Database(str(path))
    db.create_schema()
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    for _ in range(6):
        till.sale([("A", 1, 100)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db)), base_url="http://hq"
    ) as client:
        assert (await till.push(client, till.outbox[:3])).last_applied_seq == 3
        # the nightly backup, taken while HQ is running
        with sqlite3.connect(path) as live, sqlite3.connect(tmp_path / "backup.db") as copy:
            live.backup(copy)
        assert (await till.push(client, till.outbox[3:])).last_applied_seq == 6
    db.dispose()

    # HQ's disk dies; the backup is put back
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.db", path)
    db = Database(str(path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db)), base_url="http://hq"
    ) as client:
        r = await client.get(p.STATUS_PATH, headers=till.headers)
        assert p.DeviceStatus.model_validate_json(r.content).last_applied_seq == 3
        # the store re-pushes what it holds acknowledged: everything is applied exactly once
        res = await till.push(client, till.outbox)
        assert [r.status for r in res.results] == ["duplicate"] * 3 + ["applied"] * 3
        r = await client.get(
            p.RECONCILIATION_PATH, params={"business_day": "2026-11-22"}, headers=till.headers
        )
        rec = p.ReconciliationResponse.model_validate_json(r.content)
        assert rec.sales.count == 6 and rec.on_hand[0].on_hand == -6
    db.dispose()


def test_over_a_real_socket(db: Database) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    till.sale([("A", 2, 100)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            r = client.post(p.PUSH_PATH, json=till.push_body(till.outbox), headers=till.headers)
            assert r.status_code == 200
            assert p.PushResponse.model_validate_json(r.content).last_applied_seq == 1
            body = p.PullRequest(device_time=T0, cursors={"catalog": 0}).to_dict()
            r = client.post(p.PULL_PATH, json=body, headers=till.headers)
            assert p.PullResponse.model_validate_json(r.content).pages["catalog"].cursor == 1  # type: ignore[index]
            with client.stream("GET", f"{p.SNAPSHOT_PATH}/catalog", headers=till.headers) as s:
                lines = list(s.iter_lines())
            assert isinstance(p.parse_snapshot_line(lines[-1]), p.SnapshotEnd) and len(lines) == 3
            r = client.post(p.PUSH_PATH, content=b"{", headers=till.headers)
            assert r.status_code == 400 and error_code(r) == "malformed_json"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive()
