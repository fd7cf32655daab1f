"""The `hq` admin command line, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from hq.admin import hash_token
from hq.catalog_file import read_catalog
from hq.changelog import heads
from hq.cli import cli
from hq.db import Database, prices, products
from hq.errors import Unauthorized
from hq.ingest import authenticate

CSV = (
    "sku,name,price,tax_rate,barcodes,initial_stock\n"
    "T1,乌龙茶 Oolong 500ml,12.50,13,6901234567892,5\n"
    "T2,Cola 330ml,3,13,036000291452|HOUSE-7,\n"
    "T3,bad price,12.505,13,,\n"
    "T4,bad check digit,1,13,6901234567893,\n"
    "T5,dup barcode,1,13,0036000291452,\n"
    "T6,面包,8.8,9,,\n"
)
JSONL = (
    '{"sku": "J1", "name": "矿泉水", "price": 2.5, "tax_rate": 13, "barcodes": ["4006381333931"]}\n'
    '{"sku": "J2", "name": "no rate", "price": 1}\n'
    "not json\n"
)


@pytest.fixture
def target(backend: str, request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The --db / --dsn option for the backend, and a Database to look with."""
    if backend == "sqlite":
        path = tmp_path / "hq.db"
        yield ["--db", str(path)], Database(str(path))
        return
    from tests.hq.conftest import _drop_pg_schema, _pg_schema

    dsn = request.getfixturevalue("pg_dsn")
    schema = _pg_schema(dsn)
    sep = "&" if "?" in dsn else "?"
    scoped = f"{dsn}{sep}options={quote(f'-csearch_path={schema}')}"
    db = Database(scoped)
    yield ["--dsn", scoped], db
    db.dispose()
    _drop_pg_schema(dsn, schema)


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_admin_commands_end_to_end(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    opt, db = target
    assert run([*opt, "init"])[0] == 0

    code, out, err = run(
        [*opt, "store", "add", "S1", "--name", "人民广场店", "--lat", "31.23", "--lon", "121.47"]
    )
    assert code == 0 and "shown once" in err
    token = out.strip()
    assert token.startswith("hqt_") and "\n" not in token
    with db.read() as conn:
        dev = authenticate(conn, hash_token(token))
        assert (dev.store_id, dev.device_id) == ("S1", "till-1")
        with pytest.raises(Unauthorized):
            authenticate(conn, token)  # the token itself is not what HQ keeps

    code, out, _ = run([*opt, "device", "add", "S1", "till-2"])
    assert code == 0 and out.strip() != token
    code, _, err = run([*opt, "device", "add", "S1", "till-2"])
    assert code == 1 and "already has a device till-2" in err
    code, _, err = run([*opt, "device", "add", "NOPE", "till-1"])
    assert code == 1 and "no store NOPE" in err

    assert run([*opt, "staff", "add", "g1", "--name", "王芳", "--store", "S1"])[0] == 0

    csv_file = tmp_path / "cat.csv"
    csv_file.write_text(CSV, encoding="utf-8")
    code, _, err = run([*opt, "catalog", "import", str(csv_file)])
    assert code == 0
    assert "3 products loaded" in err
    assert "line 4" in err and "line 5" in err and "line 6" in err
    jsonl = tmp_path / "cat.jsonl"
    jsonl.write_text(JSONL, encoding="utf-8")
    code, _, err = run([*opt, "catalog", "import", str(jsonl)])
    assert "1 products loaded" in err and "line 2" in err and "line 3" in err

    assert run([*opt, "price", "set", "T1", "13.80"])[0] == 0
    code, _, err = run([*opt, "price", "set", "T1", "abc"])
    assert code != 0 and "not a price" in err
    code, _, err = run([*opt, "price", "set", "NOPE", "1"])
    assert code == 1 and "no product NOPE" in err
    assert run([*opt, "config", "set", "receipt.footer", "谢谢"])[0] == 0

    with db.read() as conn:
        got = {r.sku: r.price for r in conn.execute(prices.select())}
        names = {r.sku: r.name for r in conn.execute(products.select())}
        assert heads(conn)["catalog"][0] == 4
    assert got == {"T1": 1380, "T2": 300, "T6": 880, "J1": 250}
    assert names["T1"] == "乌龙茶 Oolong 500ml"

    code, out, _ = run([*opt, "report"])
    assert code == 0 and "S1" in out and "till-2" in out and "never" in out
    code, out, _ = run([*opt, "report", "--json"])
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["device_id"] for line in lines} == {"till-1", "till-2"}
    assert all(line["stock_mismatches"] is None for line in lines)

    assert run([*opt, "compact", "--days", "90"])[0] == 0
    db.dispose()


def test_the_catalogue_reader_matches_the_tills_format(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("\ufeff" + CSV, encoding="utf-8")
    items, problems = read_catalog(f)
    assert [(n, i.sku) for n, i in items] == [(2, "T1"), (3, "T2"), (7, "T6")]
    t2 = items[1][1]
    assert t2.barcodes == ("036000291452", "HOUSE-7") and t2.price == 300 and t2.tax_rate_bp == 1300
    assert {pr.line for pr in problems} == {4, 5, 6}
    assert any("check digit" in pr.message for pr in problems)
    assert any("already used on line 3" in pr.message for pr in problems)
