"""`pos sync` and `pos eod` from the command line, against HQ on a real uvicorn socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from hq import admin
from hq.app import create_app
from pos.cli import cli
from pos.domain.cart import Cart, Payment
from pos.services.sale import SaleService
from pos.store import open_store
from tests.sync.support import HQ, ean_of, make_hq


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HQ, str]]:
    hq = make_hq(tmp_path)
    hq.seed(["A1", "A2", "A3"], price=350)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hq.db), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    assert server.started
    try:
        yield hq, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def pos(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.output


def new_till(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    code, out = pos(db, "init", "--store-id", "S1", "--device-id", "till-1")
    assert code == 0, out
    return db


def test_sync_and_end_of_day_over_a_real_socket(served: tuple[HQ, str], tmp_path: Path) -> None:
    hq, url = served
    token = hq.register("S1", "till-1")
    db = new_till(tmp_path)

    code, out = pos(db, "sync")
    assert code == 2 and "does not know its HQ" in out  # nothing set up yet

    code, out = pos(db, "sync", "--hq", url, "--token", token)
    assert code == 0, out
    assert "Loaded HQ's catalog: 3 rows." in out and "Up to date with HQ" in out

    with open_store(db) as store:
        service = SaleService(store)
        product = service.lookup(ean_of("A2"))
        assert product is not None and product.price == 350
        cart = Cart().add(product, 2)
        receipt = service.complete(cart, [Payment.cash(cart.total, 1000)])
    day = receipt.business_day

    code, out = pos(db, "eod", "--day", day)  # address and token were saved the first time
    assert code == 0, out
    assert "VERIFIED" in out and "¥7.00" in out
    assert hq.sale_ids("S1") == [receipt.sale_id]
    assert hq.on_hand("S1") == {"A2": -2}
    (line,) = admin.report(hq.db)  # HQ's report shows the store's conclusion
    assert line.eod_verified is True and line.stock_mismatches == 0 and line.eod_day == day


def test_sync_exits_non_zero_while_hq_is_unreachable(tmp_path: Path) -> None:
    db = new_till(tmp_path)
    with open_store(db) as store:
        store.set_config("hq.url", "http://127.0.0.1:9")  # nothing listens there
        store.set_config("hq.token", "hqt_x")
    code, out = pos(db, "sync")
    assert code == 1
    assert "cannot be reached" in out

    code, out = pos(db, "eod", "--day", datetime.now(UTC).date().isoformat())
    assert code == 1 and "NOT VERIFIED" in out and "did not finish" in out


def test_a_wrong_token_is_reported_plainly(served: tuple[HQ, str], tmp_path: Path) -> None:
    hq, url = served
    hq.register("S1", "till-1")
    db = new_till(tmp_path)
    code, out = pos(db, "sync", "--hq", url, "--token", "hqt_not-the-right-one")
    assert code == 1
    assert "401" in out and "token" in out.lower()
