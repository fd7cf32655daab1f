"""The read-back helpers the invariant checks use agree with what the API says."""

from __future__ import annotations

import httpx

from hq import admin, checks
from hq.db import Database
from tests.hq.support import register, seed_catalog


async def test_projection_equals_the_ledger_and_survives_a_rebuild(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A", "B"])
    till = register(db, "S1")
    till.movements([("A", 10), ("B", 3)])
    till.sale([("A", 2, 100), ("B", 5, 100)])
    till.sale([("NOPE", 1, 100)])
    await till.push(client, till.outbox)

    assert checks.on_hand(db, "S1") == checks.ledger_on_hand(db, "S1") == {"A": 8, "B": -2}
    checks.rebuild_on_hand(db)
    assert checks.on_hand(db, "S1") == {"A": 8, "B": -2}
    log = checks.event_log(db, "S1", "till-1")
    assert [(e.seq, e.status) for e in log] == [(1, "applied"), (2, "applied"), (3, "rejected")]
    assert checks.last_applied_seq(db, "S1", "till-1") == 3
    assert len(checks.sale_ids(db, "S1")) == 1


async def test_stream_state_is_what_a_store_should_hold(
    db: Database, client: httpx.AsyncClient
) -> None:
    till = register(db, "S1")
    seed_catalog(db, ["A", "B"])
    admin.deactivate_products(db, ["B"])
    admin.add_staff(db, "g1", name="王芳", store_id="S1")
    head, state = checks.stream_state(db, "catalog", "S1")
    assert head == 3 and set(state) == {"A"}
    res = await till.pull(client, {"config": 0})
    _, config = checks.stream_state(db, "config", "S1")
    assert {c.key: c.row for c in res.pages["config"].changes} == config  # type: ignore[index]
