"""The receipt: the text a customer takes home, shown once the sale is safely in the journal.

`format_receipt` is plain text in display cells (a CJK character is two), so the same text can go
to the screen now and to a receipt printer later."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from rich.cells import cell_len, set_cell_size
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from pos.domain.cart import Tender
from pos.domain.money import format_amount

WIDTH = 40
METHOD_NAMES = {Tender.CASH: "Cash", Tender.CARD: "Card", Tender.WALLET: "Wallet"}


def _pair(left: str, right: str, width: int = WIDTH) -> str:
    """`left` and `right` on one line, right-aligned in display cells; left is cut if needed."""
    room = width - cell_len(right) - 1
    if cell_len(left) > room:
        left = set_cell_size(left, max(0, room - 1)) + "…"
    return left + " " * (width - cell_len(left) - cell_len(right)) + right


def _center(text: str, width: int = WIDTH) -> str:
    pad = max(0, width - cell_len(text))
    return " " * (pad // 2) + text


def _line_total(line: Any) -> int:
    value = getattr(line, "line_total", None)
    return int(value if value is not None else line.total)


def _local(moment: datetime, timezone: str) -> datetime:
    try:
        return moment.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError):  # an unknown zone name: keep the time's own offset
        return moment


def format_receipt(
    receipt: Any,
    *,
    store_id: str,
    device_id: str,
    timezone: str = "Asia/Shanghai",
    currency: str = "CNY",
    guide_id: str | None = None,
    width: int = WIDTH,
) -> str:
    """The receipt of a completed sale (the services' SaleReceipt) as text `width` cells wide."""

    def money(minor: int) -> str:
        return format_amount(minor, currency)

    rule = "-" * width
    when = _local(receipt.completed_at, timezone)
    out = [
        _center(f"Store {store_id}", width),
        _center(f"Till {device_id}", width),
        rule,
        _pair(f"Sale no. {receipt.sale_no}", f"#{receipt.short_id}", width),
        _pair(when.strftime("%Y-%m-%d %H:%M:%S"), when.strftime("UTC%z"), width),
        rule,
    ]
    short = {getattr(line, "sku", None) for line in getattr(receipt, "short_lines", ()) or ()}
    count = 0
    for line in receipt.lines:
        count += line.qty
        out.append(_pair(line.name, "", width).rstrip())
        detail = f"  {line.qty} x {money(line.unit_price)}"
        if getattr(line, "sku", None) in short or getattr(line, "stock_short", False):
            detail += " *"
        out.append(_pair(detail, money(_line_total(line)), width))
    out += [
        rule,
        _pair("Items", str(count), width),
        _pair("TOTAL", money(receipt.total), width),
        _pair("  incl. tax", money(receipt.tax_total), width),
        rule,
    ]
    for payment in receipt.payments:
        name = METHOD_NAMES.get(payment.method, str(payment.method))
        out.append(_pair(name, money(payment.amount), width))
        tendered = payment.tendered
        if payment.method is Tender.CASH and tendered is not None and tendered != payment.amount:
            out.append(_pair("  handed over", money(tendered), width))
        if payment.reference:
            out.append(_pair(f"  ref {payment.reference}", "", width).rstrip())
    out.append(_pair("CHANGE", money(receipt.change_due), width))
    if guide_id:
        out.append(_pair("Served by", guide_id, width))
    if short:
        out.append("* stock count to be checked")
    out += [rule, _center("Thank you", width), _center(str(receipt.sale_id), width)]
    return "\n".join(out)


class ReceiptModal(ModalScreen[None]):
    """Shows the receipt of the sale just committed; Enter or Esc starts the next sale.

    The line a cashier needs first (total, change due) stays above the scrolling receipt."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "close", "Next customer"),
        Binding("escape", "close", "Next customer", show=False),
    ]

    def __init__(self, text: str, summary: str) -> None:
        super().__init__()
        self.text = text
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical(id="receipt-box"):
            yield Static(self.summary, id="receipt-summary", markup=False)
            with VerticalScroll(id="receipt-scroll"):
                yield Static(self.text, id="receipt-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#receipt-scroll", VerticalScroll).focus()  # arrows scroll a long one

    def action_close(self) -> None:
        self.dismiss(None)
