"""Money as integer minor units (fen for CNY), read in one place and rounded in one place.

A float amount is a bug waiting for a cent to go missing, so every function here refuses one
with TypeError instead of converting it."""

from __future__ import annotations

import re
from decimal import Decimal

from pos.domain.errors import MoneyError

# digits, optionally a point and at most two decimals: "12", "12.5", "12.50", ".5" is refused
_AMOUNT = re.compile(r"(\d{1,12})(?:\.(\d{0,2}))?")
_RATE = re.compile(r"(\d{1,3})(?:\.(\d{0,2}))?")

_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "GBP": "£", "JPY": "¥"}

MAX_RATE_BP = 10_000  # 100 %


def _refuse_float(value: object, what: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float (got {value!r}); use int minor units")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")


def parse_amount(text: str | Decimal) -> int:
    """Read an amount in major units ("12.5" -> 1250 fen).

    Accepts plain decimal text (or a Decimal, as JSON read with parse_float=Decimal gives), with at
    most two decimals; refuses negatives, exponents, separators and anything else with MoneyError."""
    if isinstance(text, float):
        raise TypeError(f"amount must not be a float (got {text!r}); pass text like '12.50'")
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise MoneyError(f"not an amount: {text}")
        text = format(text, "f")
    if not isinstance(text, str):
        raise TypeError(f"amount must be text, got {type(text).__name__}")
    cleaned = text.strip()
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        if cleaned.startswith("-"):
            raise MoneyError(f"amount must not be negative: {text!r}")
        raise MoneyError(f"not an amount with at most 2 decimals: {text!r}")
    return int(Decimal(cleaned) * 100)


def parse_tax_rate(text: str | int | Decimal) -> int:
    """Read a tax rate given in percent ("13" -> 1300 basis points, "6.5" -> 650).

    One rule everywhere: the number is a percentage between 0 and 100, at most two decimals."""
    if isinstance(text, float):
        raise TypeError(f"tax rate must not be a float (got {text!r})")
    if isinstance(text, bool):
        raise TypeError("tax rate must not be a bool")
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, Decimal):
        if not text.is_finite():
            raise MoneyError(f"not a tax rate: {text}")
        text = format(text, "f")
    if not isinstance(text, str):
        raise TypeError(f"tax rate must be text, got {type(text).__name__}")
    cleaned = text.strip().removesuffix("%").strip()
    if _RATE.fullmatch(cleaned) is None:
        raise MoneyError(f"not a tax rate in percent (e.g. 13 or 6.5): {text!r}")
    bp = int(Decimal(cleaned) * 100)
    if bp > MAX_RATE_BP:
        raise MoneyError(f"tax rate above 100%: {text!r}")
    return bp


def format_amount(minor: int, currency: str = "CNY") -> str:
    """1250 -> "¥12.50"; -1250 -> "-¥12.50". For screens and receipts only."""
    _refuse_float(minor, "amount")
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), 100)
    symbol = _SYMBOLS.get(currency, currency + " ")
    return f"{sign}{symbol}{major:,}.{cents:02d}"


def tax_included(gross: int, rate_bp: int) -> int:
    """The tax part of a tax-inclusive amount: gross * rate / (1 + rate), rounded half up (away
    from zero for refunds, so a refund mirrors its sale). THE one place tax is rounded."""
    _refuse_float(gross, "gross amount")
    _refuse_float(rate_bp, "tax rate")
    if not 0 <= rate_bp <= MAX_RATE_BP:
        raise MoneyError(f"tax rate out of range: {rate_bp} basis points")
    numerator = abs(gross) * rate_bp
    denominator = MAX_RATE_BP + rate_bp
    tax, remainder = divmod(numerator, denominator)
    if 2 * remainder >= denominator:
        tax += 1
    return -tax if gross < 0 else tax
