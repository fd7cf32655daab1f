"""The demo's own HQ: an `hq serve` process on loopback, with the demo store registered and the
demo catalogue loaded, so the demo till syncs, shows "online" and can close its day.

HQ runs as a separate program (as it would in a chain), driven through its own command line;
the till only learns its address and token. HQ's database sits beside the demo store
(`hq.db` in the demo folder) and is reused the next time, like the store."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click
import httpx

HQ_PROGRAM = [sys.executable, "-c", "from hq.cli import main; main()"]


class DemoHQError(Exception):
    """The local HQ could not be prepared or started."""


@dataclass
class LocalHQ:
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self) -> None:
        """Stop the HQ process this demo started (and only that one)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


def _hq(hq_db: Path, *args: str) -> str:
    result = subprocess.run(
        [*HQ_PROGRAM, "--db", str(hq_db), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DemoHQError(f"hq {' '.join(args[:2])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def _die_with_parent() -> None:
    """In the HQ child: end when the till that started it ends, however it ends (a closed
    terminal, kill -9), so no demo HQ is left running."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_demo_hq(data_dir: Path, db_path: Path) -> Path:
    """Create HQ's database with the demo store and its catalogue unless it is there already
    (and the till knows its token). Returns HQ's database path."""
    from pos.services.demo import write_demo_csv
    from pos.services.sync import HQ_TOKEN, save_hq_settings
    from pos.store import catalog, open_store

    hq_db = data_dir / "hq.db"
    with open_store(db_path, create=False) as store:
        identity = store.identity
        if hq_db.exists() and store.get_config(HQ_TOKEN):
            return hq_db
        skus = catalog.count_products(store.conn)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{hq_db}{suffix}").unlink(missing_ok=True)
        click.echo(f"Setting up the demo's HQ with {skus:,} items in {hq_db} ...", err=True)
        _hq(hq_db, "init")
        csv_path = write_demo_csv(data_dir / "hq-catalog.csv", skus)
        _hq(hq_db, "catalog", "import", str(csv_path))
        token = _hq(
            hq_db,
            "store",
            "add",
            identity.store_id,
            "--name",
            "Demo store",
            "--timezone",
            identity.timezone,
            "--device",
            identity.device_id,
        ).splitlines()[-1]
        save_hq_settings(store, "http://127.0.0.1", token)
    return hq_db


def start_demo_hq(data_dir: Path, db_path: Path, *, timeout_s: float = 30.0) -> LocalHQ:
    """Prepare (if needed) and start the demo's HQ on a free loopback port; the till's HQ
    address is set to it."""
    from pos.services.sync import save_hq_settings
    from pos.store import open_store

    hq_db = prepare_demo_hq(data_dir, db_path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(data_dir / "hq.log", "ab")  # noqa: SIM115 - closed by LocalHQ.stop
    process = subprocess.Popen(
        [*HQ_PROGRAM, "--db", str(hq_db), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    local = LocalHQ(url, process, log)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            local.stop()
            raise DemoHQError(f"the demo's HQ stopped at start; see {data_dir / 'hq.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                break
        if time.monotonic() > deadline:
            local.stop()
            raise DemoHQError(f"the demo's HQ did not answer within {timeout_s:.0f} s")
        time.sleep(0.1)
    with open_store(db_path, create=False) as store:
        save_hq_settings(store, url)
    click.echo(f"The demo's HQ runs at {url} (log: {data_dir / 'hq.log'}).", err=True)
    return local
