"""`pos orders` lists the store's online orders, tasks and steps HQ did not take as current."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pos.cli import cli
from pos.services.orders import OrderService
from pos.store import open_store
from pos.store import orders as store_orders
from tests.pos.conftest import NOW
from tests.pos.test_orders import order_row


def test_pos_orders_lists_what_waits_and_what_was_taken_away(store_path: Path) -> None:
    with open_store(store_path) as store:
        store.set_identity("S1", "T1", now=NOW)
        with store.transaction() as conn:
            store_orders.apply_change(conn, "upsert", "ORD-1", order_row("ORD-1"), NOW)
            store_orders.apply_change(
                conn, "upsert", "ORD-2", order_row("ORD-2", code="111111"), NOW
            )
        OrderService(store, clock=lambda: NOW).accept("ORD-2")
        with store.transaction() as conn:
            store_orders.apply_change(
                conn, "upsert", "ORD-2", order_row("ORD-2", assignment="revoked"), NOW
            )
    out = CliRunner().invoke(cli, ["--db", str(store_path), "orders"])
    assert out.exit_code == 0, out.output
    assert "ORD-1  epoch 1  pickup" in out.output and "NEW (HQ: assigned)" in out.output
    assert "ORD-2" not in out.output  # taken away: only with --all
    every = CliRunner().invoke(cli, ["--db", str(store_path), "orders", "--all", "--json"])
    rows = [json.loads(line) for line in every.output.splitlines()]
    assert {(r["order_id"], r["stage"]) for r in rows} == {("ORD-1", "new"), ("ORD-2", "revoked")}
    missing = CliRunner().invoke(cli, ["--db", str(store_path.with_name("none.db")), "orders"])
    assert missing.exit_code == 1 and "No store database" in missing.output
