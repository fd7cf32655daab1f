"""kill -9 on a real till process: a `pos` ringing up sales (with the sync engine running in the
same process) is killed at random moments and started again on the same file, at least 50
times. Afterwards `pos sync` runs, and every sale whose receipt line was printed exists exactly
once at HQ, and no sale anywhere is half-written.

The receipt line is printed only after the sale's transaction committed, so a printed receipt
is a promise to the customer; a sale killed before its line was printed may or may not exist,
but if it exists it must be whole and at HQ once. ``KILL_LOOPS`` sets the number of kills."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from hq.app import create_app
from pos.cli import cli
from tests.sync.support import HQ, half_written_sales, make_hq

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("KILL_LOOPS", "50"))
SKUS = ["K1", "K2", "K3", "K4"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HQ, str]]:
    hq = make_hq(tmp_path)
    hq.seed(SKUS, price=250)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hq.db), log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield hq, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def ring_up(db: Path, rng: random.Random) -> tuple[list[str], int]:
    """Start a till that sells until it is killed; kill it at a random moment. Returns the
    sale ids of the receipt lines it printed, and its exit status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pos", "--db", str(db), "selftest-sell", "--count", "100000"]
        + [arg for sku in SKUS for arg in ("--sku", sku)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    moment = rng.random()
    if moment < 0.15:
        time.sleep(rng.uniform(0.0, 0.4))  # during start-up, opening the file, the first sync
    else:
        wanted = rng.randint(1, 40)
        while len(printed) < wanted:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line.decode())
        time.sleep(rng.uniform(0.0, 0.02))  # somewhere inside the next sale or sync step
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    printed.extend(rest.decode().splitlines(keepends=True))
    ids = []
    for line in printed:
        assert line.endswith("\n"), f"torn receipt line {line!r}"
        word, sale_id, _seq = line.split()
        assert word == "receipt"
        ids.append(sale_id)
    return ids, proc.returncode


@pytest.mark.slow
def test_sales_survive_kill_9_and_reach_hq_exactly_once(
    served: tuple[HQ, str], tmp_path: Path
) -> None:
    hq, url = served
    token = hq.register("S1", "till-1")
    db = tmp_path / "store.db"
    runner = CliRunner()
    for args in (
        ["init", "--store-id", "S1", "--device-id", "till-1"],
        ["sync", "--hq", url, "--token", token],
    ):
        result = runner.invoke(cli, ["--db", str(db), *args])
        assert result.exit_code == 0, result.output

    rng = random.Random(int(os.environ.get("KILL_SEED", "4")))
    shown: list[str] = []
    for _ in range(KILLS):
        ids, status = ring_up(db, rng)
        assert status == -signal.SIGKILL
        shown.extend(ids)
        assert half_written_sales(db) == []
    assert len(shown) > KILLS  # the till really was selling between the kills

    final = subprocess.run(
        [sys.executable, "-m", "pos", "--db", str(db), "sync"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stdout + final.stderr

    at_hq = hq.sale_ids("S1")
    assert len(at_hq) == len(set(at_hq))  # nothing twice
    assert set(shown) <= set(at_hq)  # every receipt shown is at HQ
    local = {r[0] for r in _rows(db, "SELECT sale_id FROM sales")}
    assert set(at_hq) == local  # and HQ has nothing the till does not
    assert half_written_sales(db) == []
    seqs = [s for s, _, _ in hq.event_seqs("S1", "till-1")]
    assert seqs == list(range(1, len(seqs) + 1))
    ledger = {
        sku: n for sku, n in _rows(db, "SELECT sku, sum(delta) FROM stock_ledger GROUP BY sku")
    }
    assert hq.on_hand("S1") == {k: v for k, v in ledger.items() if v}


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
