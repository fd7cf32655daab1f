"""Money as integer minor units (fen for CNY), read in one place and rounded in one place.

A float amount is a bug waiting for a cent to go missing, so every function here refuses one
with TypeError instead of converting it."""

from __future__ import annotations

from decimal import Decimal

from pos.domain.errors import MoneyError
from sync.protocol import catalog_file

_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "GBP": "£", "JPY": "¥"}

MAX_RATE_BP = catalog_file.MAX_RATE_BP  # 100 %


def _refuse_float(value: object, what: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float (got {value!r}); use int minor units")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")


def parse_amount(text: str | Decimal) -> int:
    """Read an amount in major units ("12.5" -> 1250 fen).

    Accepts plain decimal text (or a Decimal), with at most two decimals; refuses negatives,
    exponents, separators and anything else with MoneyError, a float with TypeError. The rule is
    the catalogue file's (sync.protocol.catalog_file.parse_amount), so a price typed at the till
    reads as the same price in a file does."""
    try:
        return catalog_file.parse_amount(text)
    except catalog_file.AmountError as exc:
        raise MoneyError(str(exc)) from None


def parse_tax_rate(text: str | int | Decimal) -> int:
    """Read a tax rate given in percent ("13" -> 1300 basis points, "6.5" -> 650): a percentage
    between 0 and 100, at most two decimals (sync.protocol.catalog_file.parse_tax_rate)."""
    try:
        return catalog_file.parse_tax_rate(text)
    except catalog_file.AmountError as exc:
        raise MoneyError(str(exc)) from None


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
