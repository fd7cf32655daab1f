"""The real HQ the benchmarks talk to: `hq serve` (uvicorn) in a subprocess on a free loopback
port, over a SQLite file or a PostgreSQL DSN. Imported by the benchmark scripts beside it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hq(
    target: str, *, workers: int | None = None, wait_s: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start HQ on ``target`` (a file path, or a DSN with ``://``) and wait until it answers
    ``/healthz``; returns the process and its URL. Stop it with :func:`stop_hq`."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hq.cli import main; main()",
            "--dsn" if "://" in target else "--db",
            target,
            "serve",
            "--quiet",
            *(("--workers", str(workers)) if workers else ()),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_hq(server)
            raise SystemExit("HQ did not start (run `hq serve` by hand to see why)")
        time.sleep(0.1)


def stop_hq(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
