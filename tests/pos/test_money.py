"""Money: read once with Decimal, rounded in one place, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pos.domain.errors import MoneyError
from pos.domain.money import format_amount, parse_amount, parse_tax_rate, tax_included


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("12.5", 1250),
        ("12.50", 1250),
        ("12", 1200),
        (" 0.01 ", 1),
        ("0", 0),
        ("12.", 1200),
        ("999999.99", 99999999),
        (Decimal("3.9"), 390),
    ],
)
def test_parse_amount_reads_major_units_exactly(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text", ["", "abc", "-1", "-0.50", "1.234", "1e3", "1,000.00", "¥5", ".5", "NaN", "1 000"]
)
def test_parse_amount_refuses_junk_negatives_and_extra_decimals(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text)


def test_float_amounts_are_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_amount(12.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(12.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tax_included(100.0, 1300)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1250, "CNY", "¥12.50"),
        (5, "CNY", "¥0.05"),
        (0, "CNY", "¥0.00"),
        (-1250, "CNY", "-¥12.50"),
        (123456789, "CNY", "¥1,234,567.89"),
        (100, "USD", "$1.00"),
        (100, "XYZ", "XYZ 1.00"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize(
    ("gross", "rate_bp", "tax"),
    [
        (11300, 1300, 1300),  # ¥113.00 at 13 % holds ¥13.00 tax
        (10900, 900, 900),
        (100, 1300, 12),  # 11.504 -> 12 (half up)
        (200, 1300, 23),  # 23.008
        (1, 1300, 0),
        (0, 1300, 0),
        (1000, 0, 0),
        (-11300, 1300, -1300),  # a refund mirrors its sale
        (106, 600, 6),
    ],
)
def test_tax_included_rounds_half_up(gross: int, rate_bp: int, tax: int) -> None:
    assert tax_included(gross, rate_bp) == tax


def test_half_exactly_rounds_up() -> None:
    # 5 * 1000 / 10000... pick numbers where the exact tax is x.5: gross 21, rate 10000 -> 10.5
    assert tax_included(21, 10_000) == 11


@pytest.mark.parametrize(("text", "bp"), [("13", 1300), ("6.5", 650), ("0", 0), ("9%", 900)])
def test_tax_rate_is_read_as_percent(text: str, bp: int) -> None:
    assert parse_tax_rate(text) == bp


@pytest.mark.parametrize("text", ["abc", "-1", "101", "13.125", ""])
def test_tax_rate_refuses_out_of_range(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_tax_rate(text)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10_000))
def test_tax_is_never_more_than_the_gross_and_mirrors_refunds(gross: int, rate_bp: int) -> None:
    tax = tax_included(gross, rate_bp)
    assert 0 <= tax <= gross
    assert tax_included(-gross, rate_bp) == -tax
    # the net (gross - tax) at the rate gives back the gross within rounding of one fen
    exact = Decimal(gross) * rate_bp / (10_000 + rate_bp)
    assert abs(Decimal(tax) - exact) <= Decimal("0.5")


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips(minor: int) -> None:
    text = format_amount(minor).removeprefix("¥").replace(",", "")
    assert parse_amount(text) == minor
