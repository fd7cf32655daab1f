"""`pos run` and `pos demo` as a person starts them: clear refusals for unusable databases, and
a till that comes up ready to scan."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pos.cli.app import prepare_demo_store
from pos.store import open_store
from pos.store.catalog import count_products
from pos.ui.app import READY_MARKER
from tests.ui.conftest import Shop

ROOT = Path(__file__).resolve().parents[2]


def pos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def test_corrupt_database_is_refused_plainly(tmp_path: Path) -> None:
    bad = tmp_path / "store.db"
    bad.write_bytes(b"these are not the pages of a database\n" * 200)
    result = pos("--db", str(bad), "run")
    assert result.returncode == 2
    assert "damaged or is not a store database" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert bad.read_bytes().startswith(b"these are not")  # left as it was, for repair


def test_second_pos_on_the_same_database_is_refused(shop: Shop) -> None:
    with open_store(shop.db_path, create=False):  # the first till holds the database
        result = pos("--db", str(shop.db_path), "run")
    assert result.returncode == 3
    assert "Another `pos` already has" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_database_says_how_to_make_one(tmp_path: Path) -> None:
    result = pos("--db", str(tmp_path / "nowhere.db"), "run")
    assert result.returncode == 2
    assert "No store database at" in result.stderr and "pos init" in result.stderr
    assert not (tmp_path / "nowhere.db").exists()
    assert "Traceback" not in result.stderr


def test_store_without_identity_says_to_run_init(tmp_path: Path) -> None:
    db_path = tmp_path / "store.db"
    open_store(db_path).close()  # created and migrated, but never given a store/device id
    result = pos("--db", str(db_path), "run")
    assert result.returncode == 2
    assert "no store identity" in result.stderr and "pos init" in result.stderr
    assert "Traceback" not in result.stderr


def run_in_terminal(args: list[str], timeout: float = 60) -> tuple[int, bytes]:
    """Start `pos` with a pseudo-terminal for the screen (as in a real terminal) and its stdout
    on a pipe; returns the exit code and what it printed on stdout."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pos", *args],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=follower,
            cwd=ROOT,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
        )
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                os.read(leader, 65536)  # drain the screen so the app never blocks on it
        if proc.poll() is None:
            proc.kill()
            pytest.fail("pos did not exit in time")
        assert proc.stdout is not None
        return proc.returncode, proc.stdout.read()
    finally:
        os.close(leader)
        os.close(follower)


def test_till_starts_ready_to_scan_in_a_terminal(shop: Shop) -> None:
    code, out = run_in_terminal(["--db", str(shop.db_path), "run", "--exit-when-ready"])
    assert code == 0
    assert READY_MARKER in out
    # it let go of the database on the way out: a second start works
    with open_store(shop.db_path, create=False) as store:
        assert store.identity.store_id == "S001"


def test_demo_store_is_created_once_then_reused(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    db_path = prepare_demo_store(data, 300)
    with open_store(db_path, create=False) as store:
        assert count_products(store.conn) == 300
        first_identity = store.identity
    again = prepare_demo_store(data, 5_000)  # a different size does not rebuild it
    assert again == db_path
    with open_store(db_path, create=False) as store:
        assert count_products(store.conn) == 300
        assert store.identity == first_identity
