"""The cashier's sale screen: scan, adjust, pay, receipt, next customer.

The cart is one frozen value; every change replaces it and the widgets follow. Stock moves only
when the sale completes, in one transaction of the sale service; the receipt appears only after
that commit returned. An unknown code or a failed commit is a message to the cashier, never an
exception, and never costs the cart."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input

from pos.domain.cart import Cart, Product, Tender
from pos.domain.errors import DomainError
from pos.domain.money import format_amount
from pos.store.errors import StoreError
from pos.ui.confirm import ConfirmModal
from pos.ui.messages import SaleCompleted, ScanReceived
from pos.ui.payment import PaymentModal
from pos.ui.receipt import ReceiptModal, format_receipt
from pos.ui.scan_routing import ScanIntent
from pos.ui.search import SearchModal
from pos.ui.wedge import DEFAULT_MAX_GAP_S, DEFAULT_MIN_CHARS
from pos.ui.widgets import CartTable, ScanField, StatusBar, Totals

if TYPE_CHECKING:
    from pos.domain.cart import Payment
    from pos.services.sale import SaleService


def explain(exc: Exception) -> str:
    """One plain sentence for the cashier about a failure."""
    if isinstance(exc, (StoreError, DomainError)):
        return str(exc)
    if isinstance(exc, sqlite3.Error):
        return (
            f"The store database failed ({exc}). Nothing was changed; try again, and call "
            "the manager if it happens again."
        )
    return f"Unexpected problem: {exc}. The cart is kept; try again or call the manager."


def _pickup_shaped(text: str) -> bool:
    """Six digits and nothing else: what the customer's pickup code looks like."""
    text = text.strip()
    return len(text) == 6 and text.isascii() and text.isdigit()


class SaleScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "pay", "Pay"),
        # short labels: the footer has 80 columns at the smallest till screen
        Binding("f3", "search", "Find"),
        Binding("f7", "deliver", "Deliver"),
        Binding("plus", "qty(1)", "Qty+1", key_display="+", priority=True),
        Binding("minus", "qty(-1)", "Qty-1", key_display="-", priority=True),
        Binding("delete", "remove_line", "Remove", key_display="Del"),
        Binding("escape", "abandon", "Cancel sale", key_display="Esc"),
        Binding("up", "cursor(-1)", "Previous line", show=False),
        Binding("down", "cursor(1)", "Next line", show=False),
    ]

    cart: reactive[Cart] = reactive(Cart, init=False)
    guide_id: reactive[str | None] = reactive(None, init=False)

    def __init__(
        self,
        service: SaleService,
        *,
        store_id: str,
        device_id: str,
        timezone: str,
        currency: str = "CNY",
        wedge_gap_s: float = DEFAULT_MAX_GAP_S,
        wedge_min_chars: int = DEFAULT_MIN_CHARS,
    ) -> None:
        super().__init__(id="sale")
        self.wedge_gap_s = wedge_gap_s
        self.wedge_min_chars = wedge_min_chars
        self.service = service
        self.store_id = store_id
        self.device_id = device_id
        self.timezone = timezone
        self.currency = currency
        self._selected: str | None = None
        self._field_empty = True
        self._out_of_stock: Product | None = None  # the last item found with none available

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.store_id, self.device_id)
        yield ScanField(self.wedge_gap_s, self.wedge_min_chars)
        yield CartTable(self.currency)
        yield Totals(self.currency)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Totals).show(self.cart, self.guide_id)
        self.scan_field.focus()

    @property
    def scan_field(self) -> ScanField:
        return self.query_one(ScanField)

    @property
    def table(self) -> CartTable:
        return self.query_one(CartTable)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_screen_resume(self) -> None:
        self.scan_field.focus()  # back from a modal: ready for the next scan at once

    # -- the cart value drives the widgets ------------------------------------------------------
    def watch_cart(self, cart: Cart) -> None:
        self.table.show(cart, select=self._selected)
        self.query_one(Totals).show(cart, self.guide_id)

    def watch_guide_id(self, guide_id: str | None) -> None:
        self.query_one(Totals).show(self.cart, guide_id)

    def _set_cart(self, cart: Cart, select: str | None = None) -> None:
        self._selected = select
        self.cart = cart

    # -- scanning -------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is not self.scan_field:
            return
        event.stop()
        text = event.value.strip()
        self.scan_field.clear()
        if text:  # bubbles up to the app, which routes every scan
            self.post_message(ScanReceived(text, self.scan_field.entry_source))

    def on_input_changed(self, event: Input.Changed) -> None:
        # +, - and Del mean "edit the cart" only while the scan field is empty (check_action):
        # the footer is told when that changes
        if event.input is self.scan_field and (not event.value) != self._field_empty:
            self._field_empty = not event.value
            self.refresh_bindings()

    def accept_scan(self, scan: ScanIntent) -> None:
        """A code arrived (typed, wedge or camera), already classified by the app."""
        if scan.is_product:
            if _pickup_shaped(scan.text):
                # a customer's 6-digit pickup code typed or scanned here: the handover of the
                # ready order it belongs to, or (none has it) a product code as before
                from pos.ui.orders_screen import open_pickup_code

                if open_pickup_code(self.app, scan.text):
                    return
            self.add_code(scan.lookup, raw=scan.text)
        elif scan.kind == "guide":
            self.guide_id = scan.value or scan.text
            self.notify(f"This sale is credited to shopping guide {self.guide_id}.")
        elif scan.kind == "payment":
            if self.cart.is_empty:
                self.notify(
                    "That is a customer's payment code. Scan the items first, then pay.",
                    severity="warning",
                )
            else:
                self.open_payment(Tender.WALLET, reference=scan.value or scan.text)
        elif scan.kind == "invalid":
            self.notify(
                f"Code {scan.text} not accepted: {scan.problem or 'it could not be read'}. "
                "Nothing was added: scan again or type the number under the barcode.",
                title="Code not accepted",
                severity="warning",
                timeout=6,
            )
        elif scan.kind == "variable_measure":
            self.notify(
                f"Weighed or priced label {scan.text}: this till cannot sell those yet. "
                "Nothing was added; ring it up by name (F3) and call the manager.",
                severity="warning",
                timeout=8,
            )
        elif scan.kind == "pickup":
            from pos.ui.orders_screen import open_handover

            open_handover(self.app, scan)
        else:
            what = {"member": "A member card", "pickup": "An online-order pickup code"}.get(
                scan.kind, f"A {scan.kind} code"
            )
            self.notify(
                f"{what} cannot be used on the sale screen. Nothing was changed.",
                severity="warning",
            )

    def add_code(self, code: str, raw: str | None = None) -> None:
        try:
            product = self.service.lookup(code)
        except (StoreError, sqlite3.Error) as exc:  # a failing disk must not close the till
            self.notify(explain(exc), title="Lookup failed", severity="error", timeout=10)
            return
        if product is None:
            self.notify(
                f"Code {raw or code} is not in the catalogue. Nothing was added: check the item, "
                "or find it by name with F3.",
                title="Unknown code",
                severity="warning",
                timeout=6,
            )
            return
        self.add_product(product, code=raw or code)

    def add_product(self, product: Product, code: str | None = None) -> None:
        try:
            cart = self.cart.add(product, code=code)
        except DomainError as exc:
            self.notify(str(exc), severity="warning")
            return
        if self.cart.is_empty:
            self.app.clear_notifications()  # a new sale: earlier hints and warnings are stale
        self._set_cart(cart, select=product.sku)
        line = cart.line(product.sku)
        crossed = line is not None and (
            line.qty > product.available >= line.qty - 1  # this unit is the first one short
            or (line.qty == 1 and product.available <= 0)
        )
        if crossed:
            self._out_of_stock = product
            held = product.on_hand - product.available
            self.notify(
                f"{product.name}: {max(0, product.available)} available here (on hand "
                f"{product.on_hand}"
                + (f", {held} held for online orders" if held else "")
                + "). F7 orders it for delivery to the customer.",
                title="Out of stock",
                severity="warning",
                timeout=8,
            )

    # -- editing the cart -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # + and - belong to the code being typed (SKU:A-1002) once the scan field has text
        if action == "qty" and self.is_mounted and self.scan_field.value:
            return False
        return super().check_action(action, parameters)

    def action_qty(self, step: int) -> None:
        sku = self.table.selected_sku
        line = self.cart.line(sku) if sku else None
        if line is None:
            return
        if line.qty + step < 1:
            self.notify("Quantity is 1. To take the item off, press Del.", severity="warning")
            return
        try:
            cart = self.cart.set_qty(line.sku, line.qty + step)
        except DomainError as exc:
            self.notify(str(exc), severity="warning")
            return
        self._set_cart(cart, select=line.sku)

    def action_remove_line(self) -> None:
        sku = self.table.selected_sku
        if sku is None:
            return
        index = self.table.cursor_row
        cart = self.cart.remove(sku)
        following = cart.lines[min(index, len(cart.lines) - 1)].sku if cart.lines else None
        self._set_cart(cart, select=following)

    def action_cursor(self, step: int) -> None:
        table = self.table
        if table.row_count:
            row = max(0, min(table.row_count - 1, table.cursor_row + step))
            table.move_cursor(row=row, animate=False)

    def action_abandon(self) -> None:
        if self.scan_field.value:  # first Esc: throw away what was being typed
            self.scan_field.clear()
            return
        if self.cart.is_empty:
            self.guide_id = None
            return
        question = (
            f"Cancel this sale? {self.cart.count} item(s), "
            f"{format_amount(self.cart.total, self.currency)}.\n"
            "Nothing is recorded for a cancelled sale."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._set_cart(Cart())
                self.guide_id = None
                self.notify("Sale cancelled. Ready for the next customer.")

        self.app.push_screen(ConfirmModal(question, yes="Cancel sale", no="Keep"), answered)

    def action_search(self) -> None:
        def chosen(product: Product | None) -> None:
            if product is not None:
                self.add_product(product, code=None)

        self.app.push_screen(
            SearchModal(self.service.search, self.currency, on_error=explain), chosen
        )

    def action_deliver(self) -> None:
        """Endless aisle: an online delivery order for the selected item (or the last one found
        out of stock)."""
        from pos.ui.orders_screen import open_endless_aisle

        sku = self.table.selected_sku
        product = self._out_of_stock
        if sku is not None and (product is None or product.sku != sku):
            product = self.service.lookup(sku) or product
        open_endless_aisle(self.app, product)

    # -- paying ---------------------------------------------------------------------------------
    def action_pay(self) -> None:
        if self.cart.is_empty:
            self.notify("The cart is empty: scan an item first.", severity="warning")
            return
        self.open_payment(Tender.CASH)

    def open_payment(self, method: Tender, reference: str | None = None) -> None:
        cart = self.cart

        def paid(payments: tuple[Payment, ...] | None) -> None:
            if payments:
                self.complete_sale(cart, payments)

        self.app.push_screen(
            PaymentModal(cart.total, self.currency, method=method, reference=reference), paid
        )

    def complete_sale(self, cart: Cart, payments: tuple[Payment, ...]) -> None:
        """Commit, then show the receipt. A failure keeps the cart for another try."""
        try:
            receipt = self.service.complete(cart, payments, guide_id=self.guide_id)
        except (StoreError, DomainError) as exc:
            self.notify(
                f"{explain(exc)} The sale was NOT recorded; the cart is kept. "
                "Press F2 to take the payment again.",
                title="Sale not saved",
                severity="error",
                timeout=30,
            )
            return
        text = format_receipt(
            receipt,
            store_id=self.store_id,
            device_id=self.device_id,
            timezone=self.timezone,
            currency=self.currency,
            guide_id=self.guide_id,
        )
        self._set_cart(Cart())
        self.guide_id = None
        self.post_message(SaleCompleted(receipt))
        conflicts = getattr(receipt, "held_conflicts", ())
        if conflicts:
            self.app.bell()
            self.notify(
                "This sale took items held for online orders: "
                + ", ".join(f"{c.sku} x{c.shortfall} of order {c.order_id}" for c in conflicts)
                + ". HQ has been told and will find them at another store.",
                title="Held stock sold",
                severity="warning",
                timeout=20,
            )
        summary = (
            f"Sale {receipt.sale_no} saved, total {format_amount(receipt.total, self.currency)}\n"
            f"Change due: {format_amount(receipt.change_due, self.currency)}"
        )
        self.app.push_screen(ReceiptModal(text, summary))

    def status_update(self, **values: Any) -> None:
        """Feed the status bar (used by the app for sync, outbox and camera news). News that
        arrives while the screen is being taken down is dropped."""
        try:
            bar = self.status
        except NoMatches:
            return
        for name, value in values.items():
            setattr(bar, name, value)
