"""The catalogue file rules shared by HQ and the till: the quick path a big file takes through
the checks accepts and refuses exactly what the full rules do, with the same messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.protocol.catalog_file import (
    ReadReport,
    Validator,
    csv_records,
    ean13,
    is_valid_gtin,
    lookup_key,
)

digits12 = st.text(alphabet="0123456789", min_size=12, max_size=12)
ean = digits12.map(ean13)
# a few codes that come back often, so rows collide on them
pool = st.sampled_from(["6921168509256", "4006381333931", "9780201379624", "6901234567892"])
some_codes = st.one_of(
    ean,  # valid EAN-13
    pool,
    st.text(alphabet="0123456789", min_size=13, max_size=13),  # mostly a wrong check digit
    st.sampled_from(["036000291452", "0036000291452", "04252614", "HOUSE-7", " 6921168509256"]),
)
usual = st.fixed_dictionaries(
    {
        "sku": st.sampled_from(["A1", "A2", "A3", "A4", "B1", "B2", "C1", "C2", "D1", "茶-1"]),
        "name": st.sampled_from(["Water", "乌龙茶 500ml", "Cola 330ml"]),
        "price": st.sampled_from(["2", "2.50", "3.5", "12.505"]),
        "rate": st.sampled_from(["13", "9", "101"]),
        "codes": st.one_of(
            st.just(""),
            some_codes,
            st.lists(some_codes, min_size=2, max_size=3).map("|".join),
            pool.map(lambda code: f"{code}|{code}"),  # one code twice in a row
        ),
        "qty": st.sampled_from(["", "0", "5", "12", "-3", "٣", "²"]),
    }
)
odd = st.fixed_dictionaries(
    {
        "sku": st.sampled_from([" B2", "B2 ", "", "x" * 65, None, "A1"]),
        "name": st.sampled_from([" Cola ", "", "n" * 501, None, "Tea"]),
        "price": st.sampled_from([" 3.5", "abc", "-1", "", 3, Decimal("1.5"), True, None]),
        "rate": st.sampled_from(["6.5", "13%", "", None, 13, Decimal("6")]),
        "codes": st.one_of(
            st.lists(some_codes, min_size=2, max_size=2).map(";".join),
            st.lists(some_codes, max_size=2),  # a JSON Lines list
            st.sampled_from([None, [1, 2], "6921168509256|", "|"]),
        ),
        "qty": st.sampled_from([" 7", "1.5", None, 4, True, -1]),
    }
)
records = st.lists(
    st.one_of(usual, usual, usual, odd).map(
        lambda r: (r["sku"], r["name"], r["price"], r["rate"], r["codes"], r["qty"])
    ),
    max_size=60,
)


def numbered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(n, *row) for n, row in enumerate(rows, start=2)]


@settings(max_examples=500, deadline=None)
@given(records)
def test_the_quick_path_accepts_and_refuses_what_the_rules_do(rows: list[tuple[Any, ...]]) -> None:
    recs = numbered(rows)
    quick_report, full_report = ReadReport(max_listed=None), ReadReport(max_listed=None)
    quick = list(Validator(quick_report).rows(recs, batch=7))
    one_by_one = Validator(full_report)
    full = [row for rec in recs if (row := one_by_one.row(rec)) is not None]
    assert quick == full
    assert quick_report.problems == full_report.problems
    assert quick_report.skipped == full_report.skipped == len(recs) - len(full)


def test_duplicates_name_the_line_that_took_the_sku_or_code_first() -> None:
    text = "sku,name,price,tax_rate,barcodes\n" + "".join(
        f"S{i},item {i},1.00,13,{ean13(f'69{i:010d}')}\n" for i in range(30_000)
    )
    text += "S12345,again,1,13,\n"  # line 30002
    text += f"T1,same code,1,13,0{ean13('690000004321')}\n"  # GTIN-14 spelling of line 4323
    report = ReadReport()
    checked = Validator(report).check(csv_records(text.splitlines(keepends=True), report))
    assert len(checked) == 30_000
    assert [(p.line, p.message) for p in report.problems] == [
        (30002, "sku S12345 already given on line 12347"),
        (30003, f"sku T1: barcode 0{ean13('690000004321')} already used on line 4323"),
    ]


@given(digits12)
def test_ean13_keys_and_check_digits_agree(body: str) -> None:
    code = ean13(body)
    assert is_valid_gtin(code) and lookup_key(code) == "0" + code
    for wrong in {code[:-1] + d for d in "0123456789"} - {code}:
        report = ReadReport()
        rows = Validator(report).check([(2, "A", "a", "1", "13", wrong, "")])
        assert not rows and "check digit" in report.problems[0].message
