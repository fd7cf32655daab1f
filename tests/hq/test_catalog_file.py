"""One catalogue file, read by HQ and by a till: the same good rows, the same bad lines, the
same barcode keys (the format is sync.protocol.catalog_file, shared by both)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hq.catalog_file import CatalogFileError, read_catalog
from pos.domain.gtin import lookup_key
from pos.services.catalog_import import import_catalog
from pos.store import open_store
from sync.protocol.catalog_file import lookup_key as barcode_key

NOW = datetime(2026, 3, 14, 1, 30, tzinfo=UTC)

CSV = (
    "sku,name,price,tax_rate,barcodes,initial_stock,shelf\n"
    "A1,农夫山泉 550ml,2.00,13,6921168509256,24,A-1\n"  # line 2
    "A2,Cola 330ml,3.5,13,036000291452|HOUSE-7,,\n"  # line 3
    "A3,UPC-E soda,4,13,04252614,,\n"  # line 4: UPC-E, keyed as its UPC-A
    "A4,Same soda as UPC-A,4,13,042100005264,,\n"  # line 5: the same GTIN as line 4
    "A5,bad price,12.505,13,,,\n"  # line 6
    "A6,bad check digit,1,13,6921168509257,,\n"  # line 7
    "A7,bad stock,1,13,,-3,\n"  # line 8
    "A1,again,1,13,,,\n"  # line 9
    "A9,twice in a row,1,13,4006381333931;4006381333931,,\n"  # line 10
    "A10,bad rate,1,101,,,\n"  # line 11
    'A11,"Two-line\nname",1.00,6.5,,,\n'  # lines 12-13
    "A12,大米 5kg,49.90,9,,7,\n"  # line 14
)


def test_hq_and_a_till_read_one_file_alike(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV, encoding="utf-8")
    items, hq_problems = read_catalog(path)
    with open_store(tmp_path / "store.db") as store:
        report = import_catalog(store, path, now=NOW)
        till_rows = store.conn.execute(
            "SELECT p.sku, p.name, p.price, p.tax_rate_bp, group_concat(b.raw, '|')"
            " FROM products p LEFT JOIN barcodes b ON b.sku = p.sku GROUP BY p.sku ORDER BY p.sku"
        ).fetchall()

    hq_rows = sorted(
        (i.sku, i.name, i.price, i.tax_rate_bp, "|".join(i.barcodes) or None) for _, i in items
    )
    assert hq_rows == sorted(till_rows)
    assert [sku for sku, *_ in hq_rows] == ["A1", "A11", "A12", "A2", "A3"]
    assert {(p.line, p.message) for p in hq_problems} == {
        (p.line, p.message) for p in report.problems
    }
    bad = {p.line: p.message for p in hq_problems}
    assert sorted(bad) == [1, 5, 6, 7, 8, 9, 10, 11]
    assert "unknown column 'shelf'" in bad[1]
    assert "barcode 042100005264 already used on line 4" in bad[5]
    assert "bad price '12.505'" in bad[6]
    assert "check digit is 7, expected 6" in bad[7]
    assert "initial_stock" in bad[8]
    assert "already given on line 2" in bad[9]
    assert "given twice" in bad[10]
    assert "tax rate above 100%" in bad[11]


@pytest.mark.parametrize(
    "code", ["04252614", "042100005264", "0042100005264", "00042100005264", " 6921168509256 "]
)
def test_hq_keys_barcodes_as_the_till_looks_them_up(code: str) -> None:
    assert barcode_key(code) == lookup_key(code)
    assert len(barcode_key(code)) == 14


def test_jsonl_numbers_are_read_exactly_at_hq(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    rows = [
        {"sku": "J1", "name": "伊利纯牛奶", "price": 39.9, "tax_rate": 9, "barcodes": ["6907992100272"]},
        {"sku": "J2", "name": "bad", "price": 1.005, "tax_rate": 13},
        {"sku": "J3", "name": "bad codes", "price": 1, "tax_rate": 13, "barcodes": [1, 2]},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    items, problems = read_catalog(path)
    assert [(n, i.sku, i.price, i.tax_rate_bp) for n, i in items] == [(1, "J1", 3990, 900)]
    assert {p.line for p in problems} == {2, 3}


def test_a_file_without_the_required_columns_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,title,price\nA,x,1\n", encoding="utf-8")
    with pytest.raises(CatalogFileError, match="no name, tax_rate column"):
        read_catalog(path)
