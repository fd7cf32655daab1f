"""Two tills racing on PostgreSQL: a movement id that another transaction commits while this
push is writing makes the push answer 503 (nothing written), and the retry quarantines it."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from hq.db import Database, stock_ledger, utcnow
from sync import protocol as p
from tests.hq.support import register, seed_catalog

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend() -> str:
    return "postgresql"


async def test_a_racing_duplicate_movement_gives_503_then_quarantine(
    db: Database, client: httpx.AsyncClient
) -> None:
    seed_catalog(db, ["A"])
    till = register(db, "S1")
    sale = till.sale([("A", 1, 100)])
    movement_id = sale.payload["lines"][0]["movement_id"]

    # another transaction has written the same movement id and not committed yet
    other = db.engine.connect()
    tx = other.begin()
    other.execute(
        stock_ledger.insert().values(
            store_id="S9",
            movement_id=movement_id,
            sku="A",
            delta=1,
            reason="x",
            event_id=str(uuid4()),
            recorded_at=utcnow(),
        )
    )
    blocker = other.execute(text("SELECT pg_backend_pid()")).scalar_one()
    released = threading.Event()

    def commit_when_blocked() -> None:
        for _ in range(3000):
            # a new transaction each time: pg_stat_activity is frozen within one
            with db.read() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE :blocker = ANY(pg_blocking_pids(pid))"
                    ),
                    {"blocker": blocker},
                ).scalar_one()
            if waiting:
                break
            time.sleep(0.01)
        tx.commit()
        released.set()

    t = threading.Thread(target=commit_when_blocked)
    t.start()
    r = await client.post(p.PUSH_PATH, json=till.push_body([sale]), headers=till.headers)
    t.join(60)
    other.close()
    assert released.is_set()
    assert r.status_code == 503
    assert p.ErrorBody.model_validate_json(r.content).error.code == "unavailable"

    res = await till.push(client, [sale])
    assert res.results[0].status == "rejected"
    assert p.reason_code(res.results[0].reason) == "movement_id_reused"
    assert res.last_applied_seq == 1
