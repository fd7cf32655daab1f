"""Bootstrap of a new store's catalogue from HQ's snapshot.

HQ (a real `hq serve` subprocess on loopback, SQLite or PostgreSQL) holds N SKUs with prices
and barcodes.

By default a new till (a fresh store file) runs its first sync with the production engine, as
`pos sync` does: it downloads the `catalog`, `prices`, `config` and `orders` snapshots in
parallel (resumable spool files), stages them in a scratch database and bulk-loads them
(indexes and the name index built once), then pulls from the snapshots' cursors. Goal: <= 60 s
end to end at 2,057,280 SKUs. Keys: skus, seconds (start of the sync to a till that can sell),
rows_per_s (SKUs / seconds), db_mb (the store file after the load), download_s, load_s,
peak_rss_mb (the till process), hq_load_s (building HQ's catalogue, not part of the figure).

With --hq-only a client just downloads the `catalog` and `prices` snapshots over HTTP and reads
every line: what HQ contributes. Keys: skus, seconds, rows_per_s, catalog_s, prices_s,
snapshot_mb, hq_load_s, db_mb (null).

    benchmarks/catalog_bootstrap.py [--hq-only] [--skus N] [--backend sqlite|postgresql]
                                    [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from hqserver import start_hq, stop_hq  # noqa: E402  (beside this script)

from hq import admin  # noqa: E402
from hq.db import Database  # noqa: E402
from sync import protocol as p  # noqa: E402
from sync.protocol.catalog_file import check_digit  # noqa: E402

DEFAULT_DSN = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def ean13(i: int) -> str:
    body = f"69{i:010d}"
    return body + str(check_digit(body))


def build_hq(args: argparse.Namespace) -> tuple[Database, str, object]:
    if args.backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="hq_boot_")
        target = str(Path(tmp) / "hq.db")

        def cleanup() -> None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    else:
        import psycopg

        schema = f"hq_boot_{uuid4().hex[:10]}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in args.dsn else "?"
        target = f"{args.dsn}{sep}options={quote(f'-csearch_path={schema}')}"

        def cleanup() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    cached = Path(args.hq_cache) / f"hq-{args.skus}.db" if args.hq_cache else None
    if cached is not None and cached.exists() and args.backend == "sqlite":
        import shutil

        shutil.copy(cached, target)  # HQ's catalogue as an earlier run built it
        return Database(target), target, cleanup
    db = Database(target)
    db.create_schema()
    chunk = 50_000
    for start in range(0, args.skus, chunk):
        items = [
            admin.CatalogItem(
                sku=f"SKU{i:08d}",
                name=f"商品 Item {i}",
                tax_rate_bp=1300 if i % 7 else 900,
                barcodes=(ean13(i),) if i % 10 else (),
                price=100 + (i * 37) % 9900,
            )
            for i in range(start, min(args.skus, start + chunk))
        ]
        problems = admin.upsert_catalog(db, items)
        assert not problems, problems[:3]
    if cached is not None and args.backend == "sqlite":
        import shutil
        import sqlite3

        cached.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(target) as live, sqlite3.connect(cached) as copy:
            live.backup(copy)
    return db, target, cleanup


def download(url: str, token: str, stream: str, parse: bool) -> tuple[int, int, float]:
    """Read a whole snapshot; rows counted by newline (``parse``: every row line json-decoded
    too, as a loader would)."""
    t0 = time.perf_counter()
    nbytes = lines = 0
    tail = b""
    head = b""
    with (
        httpx.Client(timeout=600) as client,
        client.stream(
            "GET", f"{url}{p.SNAPSHOT_PATH}/{stream}", headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            if not head:
                head = chunk[:4096]
            nbytes += len(chunk)
            lines += chunk.count(b"\n")
            if parse:
                data = tail + chunk
                cut = data.rfind(b"\n") + 1
                for line in data[:cut].splitlines():
                    if line.startswith(b'{"key"'):
                        json.loads(line)
                tail = data[cut:]
            else:
                tail = (tail + chunk)[-4096:]
    header = p.parse_snapshot_line(head.split(b"\n", 1)[0])
    end = p.parse_snapshot_line(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]) if not parse else None
    rows = lines - 2
    assert isinstance(header, p.SnapshotHeader)
    assert end is None or (isinstance(end, p.SnapshotEnd) and end.rows == rows), "cut short"
    return rows, nbytes, time.perf_counter() - t0


def store_bootstrap(url: str, token: str, args: argparse.Namespace, hq_load: float) -> dict:
    """A new till's first sync, as `pos sync` runs it, timed from start to a till that sells."""
    import asyncio
    import resource
    import shutil
    from datetime import UTC, datetime

    from pos.domain.cart import Cart, Payment
    from pos.services.sale import SaleService
    from pos.services.sync import HQSettings, make_engine
    from pos.store import open_store

    work = Path(tempfile.mkdtemp(prefix="till_boot_"))
    db_path = work / "store.db"
    marks: dict[str, float] = {}

    def progress(stream: str, phase: str, rows: int) -> None:
        now = time.perf_counter()
        marks.setdefault(f"{phase}_first", now)
        marks[f"{phase}_last"] = now
        if not args.json and rows and rows % 500_000 == 0:
            print(f"  {phase} {stream}: {rows:,} rows", file=sys.stderr)

    try:
        store = open_store(db_path)
        store.set_identity("BOOT", "till-1", now=datetime.now(UTC))
        t0 = time.perf_counter()
        engine = make_engine(store, db_path, HQSettings(url, token), on_snapshot_progress=progress)

        async def first_sync() -> object:
            try:
                return await engine.sync_once()
            finally:
                await engine.client.aclose()

        report = asyncio.run(first_sync())
        seconds = time.perf_counter() - t0
        assert report.ok, report.error  # type: ignore[attr-defined]
        # the till can sell: a scanned barcode is found and a sale completes
        service = SaleService(store)
        product = service.lookup(ean13(args.skus - 1 if (args.skus - 1) % 10 else 1))
        assert product is not None, "a barcode of the new catalogue is not found"
        cart = Cart().add(product)
        service.complete(cart, [Payment.cash(cart.total)])
        skus = int(store.conn.execute("SELECT count(*) FROM products").fetchone()[0])
        store.close()
        size = sum(
            Path(f"{db_path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{db_path}{suffix}").exists()
        )
        download_s = marks.get("download_last", t0) - t0
        return {
            "mode": "store",
            "backend": args.backend,
            "skus": skus,
            "seconds": round(seconds, 2),
            "rows_per_s": round(skus / seconds),
            "db_mb": round(size / 1e6, 1),
            "download_s": round(download_s, 2),
            "load_s": round(seconds - download_s, 2),
            "load_phases": dict(engine.puller.timings),  # type: ignore[attr-defined]
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "hq_load_s": round(hq_load, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--skus", type=int, default=2_057_280)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--hq-only", action="store_true", help="measure HQ serving the snapshots")
    ap.add_argument("--quick", action="store_true", help="20,000 SKUs")
    ap.add_argument("--parse", action="store_true", help="also json-decode every row line")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--hq-cache",
        metavar="DIR",
        help="keep HQ's built SQLite catalogue here and reuse it next time (its build is not "
        "part of the figures)",
    )
    args = ap.parse_args()
    if args.quick:
        args.skus = 20_000

    t0 = time.perf_counter()
    db, target, cleanup = build_hq(args)
    hq_load = time.perf_counter() - t0
    token = admin.add_store(db, "BOOT", name="Bootstrap", device_id="till-1") or ""
    server, url = start_hq(target)
    try:
        if not args.hq_only:
            result = store_bootstrap(url, token, args, hq_load)
            if not args.json:
                for k, v in result.items():
                    print(f"{k:>14}: {v}")
            print(json.dumps(result))
            return
        cat_rows, cat_bytes, cat_s = download(url, token, "catalog", args.parse)
        price_rows, price_bytes, price_s = download(url, token, "prices", args.parse)
        seconds = cat_s + price_s
        result = {
            "mode": "hq-only" + (" +parse" if args.parse else ""),
            "backend": args.backend,
            "skus": cat_rows,
            "seconds": round(seconds, 2),
            "rows_per_s": round((cat_rows + price_rows) / seconds),
            "catalog_s": round(cat_s, 2),
            "prices_s": round(price_s, 2),
            "snapshot_mb": round((cat_bytes + price_bytes) / 1e6, 1),
            "hq_load_s": round(hq_load, 1),
            "db_mb": None,
        }
        if not args.json:
            for k, v in result.items():
                print(f"{k:>12}: {v}")
        print(json.dumps(result))
    finally:
        stop_hq(server)
        db.dispose()
        cleanup()  # type: ignore[operator]


if __name__ == "__main__":
    main()
