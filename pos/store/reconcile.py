"""The till's own figures for the end-of-day comparison with HQ: one business day's sales and
payments per method, and on-hand per SKU (the ledger's projection, checked against the ledger)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pos.store._conn import DbLike, connection


@dataclass(frozen=True, slots=True)
class MethodFigure:
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    count: int
    total: int
    tax_total: int
    by_method: dict[str, MethodFigure] = field(default_factory=dict)


def day_figures(db: DbLike, business_day: str) -> DayFigures:
    """Sales of one business day (as each sale recorded it, in the store's time zone)."""
    conn = connection(db)
    count, total, tax = conn.execute(
        "SELECT count(*), coalesce(sum(total), 0), coalesce(sum(tax_total), 0) FROM sales"
        " WHERE business_day = ?",
        (business_day,),
    ).fetchone()
    by_method = {
        str(method): MethodFigure(int(n), int(amount))
        for method, n, amount in conn.execute(
            "SELECT p.method, count(*), coalesce(sum(p.amount), 0) FROM payments p"
            " JOIN sales s ON s.sale_id = p.sale_id WHERE s.business_day = ?"
            " GROUP BY p.method",
            (business_day,),
        )
    }
    return DayFigures(int(count), int(total), int(tax), by_method)


def on_hand_by_sku(db: DbLike) -> dict[str, int]:
    """On-hand of every SKU with any stock movement at this till."""
    return {
        str(sku): int(n)
        for sku, n in connection(db).execute("SELECT sku, on_hand FROM stock_on_hand")
    }


def projection_drift(db: DbLike) -> dict[str, tuple[int, int]]:
    """SKUs whose on-hand projection differs from the sum of their ledger: sku ->
    (projection, ledger). Empty unless the projection is damaged (rebuild_on_hand repairs it)."""
    rows = connection(db).execute(
        "SELECT coalesce(l.sku, p.sku), coalesce(p.on_hand, 0), coalesce(l.total, 0)"
        " FROM (SELECT sku, sum(delta) AS total FROM stock_ledger GROUP BY sku) l"
        " FULL OUTER JOIN stock_on_hand p ON p.sku = l.sku"
        " WHERE coalesce(p.on_hand, 0) != coalesce(l.total, 0)"
    )
    return {str(sku): (int(a), int(b)) for sku, a, b in rows}


def own_movements(db: DbLike) -> tuple[dict[str, int], int]:
    """Net stock movement per SKU of this till's ledger, and how many of its movements no
    event carries yet.

    Every row of a till's ledger is a movement this till made: its sales and order steps
    carry their own, and the rest (initial stock of a catalogue import, adjustments) is given
    a ``stock.adjusted`` event before each push (``SqliteSyncState.before_push``). Nothing
    pulled from HQ enters the ledger (orders of other tills only hold stock). So, once every
    movement has its event and the outbox is drained, these sums are exactly what HQ should
    hold for this device."""
    conn = connection(db)
    sums = {
        str(sku): int(n)
        for sku, n in conn.execute("SELECT sku, sum(delta) FROM stock_ledger GROUP BY sku")
    }
    unsent = conn.execute(
        "SELECT count(*) FROM stock_ledger WHERE ref_event_id IS NULL"
    ).fetchone()[0]
    return sums, int(unsent)
