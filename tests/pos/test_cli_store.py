"""`pos init` and `pos catalog ...` as a store manager runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pos.cli import cli
from pos.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pos", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_init_then_import_reports_lines_and_loads(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--db", str(db), "init", "--store-id", "SH-001", "--device-id", "TILL-2"]
    )
    assert result.exit_code == 0, result.output
    assert "SH-001" in result.output and "TILL-2" in result.output

    csv_path = tmp_path / "items.csv"
    csv_path.write_text(
        "sku,name,price,tax_rate,barcodes,initial_stock\n"
        "A1,可口可乐 330ml,3.50,13,6901234567892,5\n"
        "A2,bad,abc,13,,1\n",
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["--db", str(db), "catalog", "import", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "line 3: sku A2: bad price 'abc'" in result.output
    assert "Loaded 1 products" in result.output and "1 rows skipped" in result.output
    with open_store(db, create=False) as store:
        assert store.identity.device_id == "TILL-2"


def test_catalog_demo_loads_the_requested_size(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "catalog", "demo", "--skus", "1500"])
    assert result.exit_code == 0, result.output
    assert "Loaded 1,500 products" in result.output
    with open_store(db) as store:
        assert store.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 1500
    again = CliRunner().invoke(cli, ["--db", str(db), "catalog", "demo", "--skus", "10"])
    assert again.exit_code == 1 and "--replace" in again.output
    replaced = CliRunner().invoke(
        cli, ["--db", str(db), "catalog", "demo", "--skus", "10", "--replace"]
    )
    assert replaced.exit_code == 0 and "Loaded 10 products" in replaced.output


def test_a_corrupt_database_gives_a_message_and_exit_1_without_traceback(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    db.write_bytes(b"not a database at all " * 200)
    result = run("--db", str(db), "init", "--store-id", "S", "--device-id", "T")
    assert result.returncode == 1
    assert "damaged or is not a store database" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_second_pos_on_the_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with open_store(db):
        result = run("--db", str(db), "catalog", "demo", "--skus", "10")
    assert result.returncode == 1
    assert "Another `pos` already has" in result.stderr
    assert "Traceback" not in result.stderr
