"""The cart and its payments as frozen values.

Every change returns a new Cart, so the screen can swap its cart in one assignment and an abandoned
cart is simply dropped: nothing about it was ever written anywhere."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from pos.domain.errors import CartError, PaymentError
from pos.domain.money import format_amount, tax_included

MAX_QTY = 9_999  # a per-line guard against a scanner stuck on repeat or a fat-fingered quantity


def _check_int(value: object, what: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float (got {value!r})")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price: int  # tax-inclusive, minor units
    tax_rate_bp: int  # 1300 = 13 %
    barcodes: tuple[str, ...] = ()
    on_hand: int = 0
    available: int = 0

    def __post_init__(self) -> None:
        _check_int(self.price, "price")
        _check_int(self.tax_rate_bp, "tax rate")


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    name: str
    unit_price: int
    tax_rate_bp: int
    qty: int
    code: str | None = None  # the code that was scanned, None when found by name

    def __post_init__(self) -> None:
        _check_int(self.unit_price, "unit price")
        _check_int(self.qty, "quantity")
        if not 1 <= self.qty <= MAX_QTY:
            raise CartError(f"quantity must be between 1 and {MAX_QTY}, got {self.qty}")

    @property
    def total(self) -> int:
        return self.unit_price * self.qty

    @property
    def tax(self) -> int:
        # tax is rounded per line (on the line total), as a receipt shows it
        return tax_included(self.total, self.tax_rate_bp)


@dataclass(frozen=True, slots=True)
class Cart:
    lines: tuple[CartLine, ...] = ()

    def add(self, product: Product, qty: int = 1, code: str | None = None) -> Cart:
        """Add a product; a sku already in the cart has its quantity raised instead (its price and
        name stay those of the first scan, so a line never changes price under the cashier)."""
        _check_int(qty, "quantity")
        if qty < 1:
            raise CartError(f"quantity to add must be at least 1, got {qty}")
        for i, line in enumerate(self.lines):
            if line.sku == product.sku:
                merged = replace(line, qty=line.qty + qty)
                return Cart((*self.lines[:i], merged, *self.lines[i + 1 :]))
        line = CartLine(
            sku=product.sku,
            name=product.name,
            unit_price=product.price,
            tax_rate_bp=product.tax_rate_bp,
            qty=qty,
            code=code,
        )
        return Cart((*self.lines, line))

    def set_qty(self, sku: str, qty: int) -> Cart:
        """Set a line's quantity; 0 removes the line."""
        _check_int(qty, "quantity")
        if qty < 0:
            raise CartError(f"quantity cannot be negative, got {qty}")
        if qty == 0:
            return self.remove(sku)
        index = self._index(sku)
        changed = replace(self.lines[index], qty=qty)
        return Cart((*self.lines[:index], changed, *self.lines[index + 1 :]))

    def remove(self, sku: str) -> Cart:
        index = self._index(sku)
        return Cart(self.lines[:index] + self.lines[index + 1 :])

    def line(self, sku: str) -> CartLine | None:
        return next((line for line in self.lines if line.sku == sku), None)

    def _index(self, sku: str) -> int:
        for i, line in enumerate(self.lines):
            if line.sku == sku:
                return i
        raise CartError(f"{sku} is not in the cart")

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def tax_total(self) -> int:
        return sum(line.tax for line in self.lines)

    @property
    def count(self) -> int:
        """Number of items (sum of quantities), as a cashier counts them."""
        return sum(line.qty for line in self.lines)

    @property
    def is_empty(self) -> bool:
        return not self.lines


class Tender(enum.Enum):
    CASH = "cash"
    CARD = "card"
    WALLET = "wallet"  # a mobile wallet; the code the customer shows is the reference


@dataclass(frozen=True, slots=True)
class Payment:
    """One tender applied to a sale.

    `amount` is the part of the sale total this tender pays. For cash, `tendered` is what the
    customer handed over (defaults to `amount`) and the difference is change due. A wallet payment
    must carry the code the customer showed (`reference`); a card payment may carry the slip ref."""

    method: Tender
    amount: int
    tendered: int | None = None
    reference: str | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.method, Tender):
            raise TypeError(f"method must be a Tender, got {self.method!r}")
        _check_int(self.amount, "payment amount")
        if self.amount <= 0:
            raise PaymentError(
                f"a payment must be more than zero, got {format_amount(self.amount)}"
            )
        if self.tendered is not None:
            _check_int(self.tendered, "amount tendered")
            if self.method is not Tender.CASH:
                raise PaymentError("only cash can be over-tendered; card and wallet pay exactly")
            if self.tendered < self.amount:
                raise PaymentError(
                    f"cash handed over ({format_amount(self.tendered)}) is less than the amount "
                    f"it pays ({format_amount(self.amount)})"
                )
        if self.method is Tender.WALLET and not (self.reference and self.reference.strip()):
            raise PaymentError("scan or type the wallet code the customer shows")

    @property
    def change(self) -> int:
        if self.method is Tender.CASH and self.tendered is not None:
            return self.tendered - self.amount
        return 0

    @classmethod
    def cash(cls, amount: int, tendered: int | None = None) -> Payment:
        return cls(Tender.CASH, amount, tendered if tendered is not None else amount)


def settle(total: int, payments: tuple[Payment, ...] | list[Payment]) -> int:
    """Check that payments settle a sale total exactly; return the change due (cash only).

    The payment amounts must add up to the total: over-payment is expressed by a cash payment's
    `tendered`, never by a larger amount, so a card is never charged more than the sale."""
    _check_int(total, "total")
    if not payments:
        raise PaymentError("no payment given")
    paid = sum(p.amount for p in payments)
    if paid < total:
        raise PaymentError(f"{format_amount(total - paid)} still to pay")
    if paid > total:
        raise PaymentError(
            f"payments ({format_amount(paid)}) exceed the total ({format_amount(total)}); "
            "enter cash handed over as the amount tendered"
        )
    return sum(p.change for p in payments)
