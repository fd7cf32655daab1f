"""Ringing up a sale: look codes up, and complete a paid cart in one durable transaction.

The cart itself is a frozen value the screen holds (pos.domain.cart); nothing is written while
the cashier scans, so an abandoned cart leaves no trace. `complete` writes the sale, its lines
and payments, one stock movement per line, and the `sale.completed` event for HQ, all or nothing,
with synchronous=FULL, before it returns the receipt."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from pos.domain.cart import Cart, Payment, Product, settle
from pos.domain.errors import CartError
from pos.domain.gtin import lookup_key
from pos.store import Store, catalog, outbox, sales, stock
from pos.store import orders as store_orders
from pos.store.errors import translate
from pos.store.sales import PaymentRow, SaleLineRow, SaleRow

P = ParamSpec("P")
T = TypeVar("T")

Clock = Callable[[], datetime]
SALE_COMPLETED = "sale.completed"
ORDER_HOLD_AT_RISK = "order.hold_at_risk"
SALE_SCHEMA_VERSION = 1
CURRENCY = "CNY"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    line_no: int
    sku: str
    name: str
    qty: int
    unit_price: int
    tax_rate_bp: int
    line_total: int
    tax_amount: int
    movement_id: str
    code: str | None
    stock_short: bool  # this sale took the SKU's on-hand below zero


@dataclass(frozen=True, slots=True)
class SaleReceipt:
    sale_id: str
    sale_no: int
    short_id: str
    lines: tuple[ReceiptLine, ...]
    payments: tuple[Payment, ...]
    total: int
    tax_total: int
    change_due: int
    completed_at: datetime  # in the store's time zone
    short_lines: tuple[ReceiptLine, ...]  # lines flagged stock_short
    business_day: str = ""
    store_id: str = ""
    device_id: str = ""
    currency: str = CURRENCY
    guide_id: str | None = None
    seq: int = 0
    event_id: str = ""
    # online orders whose held stock this sale took (each was told to HQ: order.hold_at_risk)
    held_conflicts: tuple[store_orders.HeldConflict, ...] = ()


def _store_errors(method: Callable[P, T]) -> Callable[P, T]:
    """A damaged or unreadable file found while reading comes out as a StoreError (with a
    message for the cashier), not as a raw sqlite3 error."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise (translate(exc) or exc) from exc

    return wrapper


class SaleService:
    """The cashier's use cases over one open store (same thread as the store)."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    # -- finding products ----------------------------------------------------------------------

    @_store_errors
    def lookup(self, code: str) -> Product | None:
        """The product a scanned or typed code stands for: its barcode (any GTIN spelling), or
        failing that an exact SKU. None when unknown; never raises for odd input."""
        key = lookup_key(code)
        if not key:
            return None
        product = catalog.find_by_code(self.store.conn, key)
        if product is None:
            product = catalog.find_by_sku(self.store.conn, code.strip())
        if product is not None:
            held = store_orders.held(self.store.conn, product.sku)
            if held:
                product = dataclasses.replace(product, available=product.on_hand - held)
        return product

    @_store_errors
    def search(self, text: str, limit: int = 20) -> list[Product]:
        """Products by name (for items without a barcode). See catalog.search_names for how
        1-2 character queries are answered."""
        return catalog.search_names(self.store.conn, text, limit)

    @_store_errors
    def available(self, sku: str) -> int:
        """Units the till may promise: on-hand minus what is held for online orders."""
        return stock.on_hand(self.store.conn, sku) - store_orders.held(self.store.conn, sku)

    # -- completing ----------------------------------------------------------------------------

    def complete(
        self, cart: Cart, payments: Sequence[Payment], guide_id: str | None = None
    ) -> SaleReceipt:
        """Record a paid sale, all or nothing. Raises CartError for an empty cart, PaymentError
        when payments do not settle the total, StoreFullError when the disk is full (nothing is
        recorded then; the same cart and payments can be completed again)."""
        if cart.is_empty:
            raise CartError("The cart is empty: scan an item first.")
        payments = tuple(payments)
        change_due = settle(cart.total, payments)
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        identity = self.store.identity
        local = now.astimezone(identity.zone)
        completed_at = local.isoformat(timespec="milliseconds")
        business_day = local.date().isoformat()
        sale_id = str(uuid.uuid4())
        short_id = sale_id.replace("-", "")[:8].upper()
        event_id = str(uuid.uuid4())
        guide = guide_id.strip() if guide_id and guide_id.strip() else None

        with self.store.transaction() as conn:
            sale_no = sales.next_sale_no(conn)
            on_hand = stock.on_hand_many(conn, (line.sku for line in cart.lines))
            lines = tuple(
                ReceiptLine(
                    line_no=n,
                    sku=line.sku,
                    name=line.name,
                    qty=line.qty,
                    unit_price=line.unit_price,
                    tax_rate_bp=line.tax_rate_bp,
                    line_total=line.total,
                    tax_amount=line.tax,
                    movement_id=stock.new_movement_id(),
                    code=line.code,
                    stock_short=on_hand[line.sku] - line.qty < 0,
                )
                for n, line in enumerate(cart.lines, start=1)
            )
            payment_rows = tuple(
                PaymentRow(
                    n=n,
                    method=p.method.value,
                    amount=p.amount,
                    tendered=p.tendered if p.method.value == "cash" else None,
                    change=p.change if p.method.value == "cash" else None,
                    reference=p.reference,
                )
                for n, p in enumerate(payments, start=1)
            )
            sale = SaleRow(
                sale_id=sale_id,
                sale_no=sale_no,
                short_id=short_id,
                business_day=business_day,
                completed_at=completed_at,
                guide_id=guide,
                total=cart.total,
                tax_total=cart.tax_total,
                currency=CURRENCY,
                event_id=event_id,
            )
            sales.insert_sale(
                conn, sale, [SaleLineRow(**_fields(line)) for line in lines], payment_rows
            )
            conflicts = store_orders.take_held_stock(
                conn, {line.sku: line.qty for line in lines}, on_hand
            )
            stock.record(
                conn,
                (
                    stock.Movement(
                        sku=line.sku,
                        delta=-line.qty,
                        reason="sale",
                        occurred_at=completed_at,
                        movement_id=line.movement_id,
                        ref_event_id=event_id,
                    )
                    for line in lines
                ),
            )
            payload = sale_payload(sale, lines, payment_rows, identity.store_id, identity.device_id)
            seq, _ = outbox.append(
                conn,
                SALE_COMPLETED,
                payload,
                local,
                schema_version=SALE_SCHEMA_VERSION,
                event_id=event_id,
            )
            for c in conflicts:  # HQ re-sources what this sale took from each order
                at_risk = {"order_id": c.order_id, "epoch": c.epoch, "sku": c.sku}
                at_risk |= {"shortfall": c.shortfall, "sale_id": sale_id}
                _, risk_id = outbox.append(conn, ORDER_HOLD_AT_RISK, at_risk, local)
                store_orders.record_step(
                    conn, c.order_id, c.epoch, ORDER_HOLD_AT_RISK, risk_id, now
                )

        return SaleReceipt(
            sale_id=sale_id,
            sale_no=sale_no,
            short_id=short_id,
            lines=lines,
            payments=payments,
            total=cart.total,
            tax_total=cart.tax_total,
            change_due=change_due,
            completed_at=local,
            short_lines=tuple(line for line in lines if line.stock_short),
            business_day=business_day,
            store_id=identity.store_id,
            device_id=identity.device_id,
            guide_id=guide,
            seq=seq,
            event_id=event_id,
            held_conflicts=tuple(conflicts),
        )


def _fields(line: ReceiptLine) -> dict[str, Any]:
    return {name: getattr(line, name) for name in ReceiptLine.__slots__}


def sale_payload(
    sale: SaleRow,
    lines: Sequence[ReceiptLine],
    payments: Sequence[PaymentRow],
    store_id: str,
    device_id: str,
) -> dict[str, Any]:
    """The `sale.completed` payload, schema_version 1 (HQ ingests exactly this shape)."""
    return {
        "sale_id": sale.sale_id,
        "sale_no": sale.sale_no,
        "short_id": sale.short_id,
        "store_id": store_id,
        "device_id": device_id,
        "business_day": sale.business_day,
        "completed_at": sale.completed_at,
        "currency": sale.currency,
        "guide_id": sale.guide_id,
        "total": sale.total,
        "tax_total": sale.tax_total,
        "lines": [
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "name": line.name,
                "qty": line.qty,
                "unit_price": line.unit_price,
                "tax_rate_bp": line.tax_rate_bp,
                "line_total": line.line_total,
                "tax_amount": line.tax_amount,
                "movement_id": line.movement_id,
                "code": line.code,
                "stock_short": line.stock_short,
            }
            for line in lines
        ],
        "payments": [
            {
                "method": p.method,
                "amount": p.amount,
                "tendered": p.tendered,
                "change": p.change,
                "reference": p.reference,
            }
            for p in payments
        ],
    }
