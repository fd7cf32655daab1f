"""Writing a completed sale's rows. Only the sale service calls this, inside its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pos.store._conn import DbLike, connection
from pos.store.errors import StoreNotInitialisedError


@dataclass(frozen=True, slots=True)
class SaleRow:
    sale_id: str
    sale_no: int
    short_id: str
    business_day: str
    completed_at: str
    guide_id: str | None
    total: int
    tax_total: int
    currency: str
    event_id: str


@dataclass(frozen=True, slots=True)
class SaleLineRow:
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
    stock_short: bool


@dataclass(frozen=True, slots=True)
class PaymentRow:
    n: int
    method: str
    amount: int
    tendered: int | None
    change: int | None
    reference: str | None


def next_sale_no(db: DbLike) -> int:
    """Take the next sale number (rolls back with the caller's transaction: no gaps)."""
    row = (
        connection(db)
        .execute(
            "UPDATE device SET next_sale_no = next_sale_no + 1 WHERE id = 1"
            " RETURNING next_sale_no - 1"
        )
        .fetchone()
    )
    if row is None:
        raise StoreNotInitialisedError("This till has no device identity; run `pos init` first.")
    return int(row[0])


def insert_sale(
    db: DbLike, sale: SaleRow, lines: Sequence[SaleLineRow], payments: Sequence[PaymentRow]
) -> None:
    conn = connection(db)
    conn.execute(
        "INSERT INTO sales (sale_id, sale_no, short_id, business_day, completed_at, guide_id,"
        " total, tax_total, currency, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sale.sale_id,
            sale.sale_no,
            sale.short_id,
            sale.business_day,
            sale.completed_at,
            sale.guide_id,
            sale.total,
            sale.tax_total,
            sale.currency,
            sale.event_id,
        ),
    )
    conn.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, qty, unit_price, tax_rate_bp,"
        " line_total, tax_amount, movement_id, code, stock_short)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                sale.sale_id,
                line.line_no,
                line.sku,
                line.name,
                line.qty,
                line.unit_price,
                line.tax_rate_bp,
                line.line_total,
                line.tax_amount,
                line.movement_id,
                line.code,
                int(line.stock_short),
            )
            for line in lines
        ],
    )
    conn.executemany(
        "INSERT INTO payments (sale_id, n, method, amount, tendered, change, reference)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (sale.sale_id, p.n, p.method, p.amount, p.tendered, p.change, p.reference)
            for p in payments
        ],
    )


def count_rows(db: DbLike) -> dict[str, int]:
    """Rows per store-owned table (for checks and tests)."""
    conn = connection(db)
    return {
        table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for table in ("sales", "sale_lines", "payments", "stock_ledger", "outbox")
    }
