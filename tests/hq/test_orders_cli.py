"""`hq platform add`, `hq order create / demo / show / list / tick / reassign`: what a person at
HQ types, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from hq import admin, orders
from hq.cli import cli
from hq.db import Database
from tests.hq.order_support import FAR, NEAR
from tests.hq.support import register, seed_catalog


def run(db: Database, *args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), obj={"database": db})
    assert result.exit_code == 0, result.output
    return result


def _stock(db: Database, store: str, items: list[tuple[str, int]]) -> None:
    from hq import ingest
    from sync import protocol as p
    from tests.hq.support import T0, Till

    till = Till(store, "till-1", "")
    env = till.movements(items)
    with db.read() as conn:
        dev = ingest.authenticate(conn, _token_hash(db, store))
    res = ingest.push(db, dev, p.PushRequest(device_time=T0, batch=[env]), now=T0)
    assert res.results[0].status == "applied"


def _token_hash(db: Database, store: str) -> str:
    from sqlalchemy import select

    from hq.db import devices

    with db.read() as conn:
        return str(
            conn.execute(select(devices.c.token_hash).where(devices.c.store_id == store)).scalar()
        )


def test_orders_from_the_command_line(db: Database) -> None:
    seed_catalog(db, ["A", "B"])
    register(db, "S1", lat=NEAR[0], lon=NEAR[1])
    register(db, "S2", lat=FAR[0], lon=FAR[1])
    _stock(db, "S1", [("A", 3)])
    _stock(db, "S2", [("A", 3), ("B", 3)])

    out = run(db, "platform", "add", "jd")
    key = out.stdout.strip()
    assert key.startswith(orders.PLATFORM_KEY_PREFIX) and orders.platform_of_key(db, key) == "jd"
    assert key not in json.dumps(_all_rows(db), default=str)  # only its hash is kept

    at = "2026-11-22T02:05:00+00:00"
    made = run(
        db,
        "order",
        "create",
        "--ref",
        "PHONE-1",
        "--line",
        "A:2",
        "--pickup",
        "S1",
        "--name",
        "王芳",
        "--phone",
        "13700000000",
        "--at",
        at,
    )
    order_id = made.stdout.strip()
    again = run(
        db, "order", "create", "--ref", "PHONE-1", "--line", "A:2", "--pickup", "S1",
        "--name", "王芳", "--phone", "13700000000", "--at", at,
    )  # fmt: skip
    assert again.stdout.strip() == order_id and "Already known" in again.stderr

    shown = run(db, "order", "show", order_id).stdout
    code = orders.view(db, order_id)["pickup_code"]
    assert f"PICKUP:{order_id}:{code}" in shown and "assigned S1 epoch 1" in shown

    assert "revoked" in run(db, "order", "reassign", order_id, "--at", at).stdout
    assert orders.view(db, order_id)["state"] == "backorder"  # the pickup store only

    run(db, "order", "tick", "--at", "2026-11-22T03:00:00+00:00")
    listed = [json.loads(line) for line in run(db, "order", "list", "--json").stdout.splitlines()]
    assert [o["order_id"] for o in listed] == [order_id]

    demo = run(db, "order", "demo", "--count", "3").stdout.split()
    assert len(demo) == 3
    for oid in demo:
        assert orders.view(db, oid)["platform"] == "demo"


def _all_rows(db: Database) -> list[Any]:
    from sqlalchemy import select

    from hq.db import platforms

    with db.read() as conn:
        return [tuple(r) for r in conn.execute(select(platforms))]


def test_report_lists_no_incidents_when_there_are_none(db: Database) -> None:
    register(db, "S1")
    admin.set_config(db, "orders.split", True)
    out = run(db, "report").stdout
    assert "incident" not in out
