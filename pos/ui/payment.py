"""Taking payment: cash (with change), card, mobile wallet, and any mix of them.

The modal only collects tenders until they cover the total and hands them back; the sale screen
commits the sale. A wallet payment needs the code the customer shows: scanning it here (wedge or
camera) records it as the payment's reference."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from pos.domain.cart import Payment, Tender
from pos.domain.errors import DomainError
from pos.domain.money import format_amount, parse_amount
from pos.ui.scan_routing import ScanIntent

METHOD_NAMES = {Tender.CASH: "Cash", Tender.CARD: "Card", Tender.WALLET: "Wallet"}
REFERENCE_HINTS = {
    Tender.CASH: "not needed for cash",
    Tender.CARD: "card slip number (optional)",
    Tender.WALLET: "scan the customer's payment code",
}


def describe_payment(payment: Payment, currency: str = "CNY") -> str:
    text = f"{METHOD_NAMES[payment.method]} {format_amount(payment.amount, currency)}"
    if payment.method is Tender.CASH and payment.change:
        text += (
            f" (handed {format_amount(payment.tendered or 0, currency)},"
            f" change {format_amount(payment.change, currency)})"
        )
    if payment.reference:
        text += f" ref {payment.reference}"
    return text


class PaymentModal(ModalScreen[tuple[Payment, ...] | None]):
    """Collects tenders for `total`; dismisses with them once they cover it, or None on Esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "method('cash')", "Cash"),
        Binding("f6", "method('card')", "Card"),
        Binding("f7", "method('wallet')", "Wallet"),
        Binding("f8", "undo", "Undo tender"),
        Binding("escape", "cancel", "Back to cart"),
    ]

    def __init__(
        self,
        total: int,
        currency: str = "CNY",
        method: Tender = Tender.CASH,
        reference: str | None = None,
    ) -> None:
        super().__init__()
        self.total = total
        self.currency = currency
        self.method = method
        self.payments: list[Payment] = []
        self._initial_reference = reference

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="payment-box"):
            yield Static("Payment", id="payment-title")
            yield Static("", id="payment-summary")
            yield Static("", id="payment-methods")
            with Grid(id="payment-form"):
                yield Label("Amount", classes="field-label")
                yield Input(id="amount", select_on_focus=True)
                yield Label("Reference", classes="field-label")
                yield Input(id="reference", select_on_focus=False)
            yield Static("", id="payment-tenders")
            yield Static("", id="payment-hint")
        yield Footer()

    def on_mount(self) -> None:
        self._refresh()
        if self._initial_reference:
            self.query_one("#reference", Input).value = self._initial_reference
            self._hint("Payment code scanned: check the amount and press Enter.")
        else:
            self._hint("Enter to take the amount shown; type another amount for cash handed over.")
        self._offer_amount(self.remaining)

    def _offer_amount(self, minor: int) -> None:
        """Put an amount in the field, selected, so typing replaces it and Enter accepts it."""
        amount = self.query_one("#amount", Input)
        amount.value = self._major(minor)
        amount.focus()
        self.call_after_refresh(amount.select_all)

    # -- values ---------------------------------------------------------------------------------
    @property
    def paid(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def remaining(self) -> int:
        return self.total - self.paid

    def _major(self, minor: int) -> str:
        return f"{minor // 100}.{minor % 100:02d}"

    def _money(self, minor: int) -> str:
        return format_amount(minor, self.currency)

    def _refresh(self) -> None:
        self.query_one("#payment-summary", Static).update(
            f"Total {self._money(self.total)}   Paid {self._money(self.paid)}   "
            f"[b]Due {self._money(self.remaining)}[/b]"
        )
        methods = "  ".join(
            f"[reverse] {key} {name} [/reverse]" if tender is self.method else f" {key} {name} "
            for tender, name, key in (
                (Tender.CASH, "Cash", "F5"),
                (Tender.CARD, "Card", "F6"),
                (Tender.WALLET, "Wallet", "F7"),
            )
        )
        self.query_one("#payment-methods", Static).update(methods)
        self.query_one("#reference", Input).placeholder = REFERENCE_HINTS[self.method]
        self.query_one("#reference", Input).disabled = self.method is Tender.CASH
        tenders = "\n".join(
            f"{n}. {describe_payment(p, self.currency)}" for n, p in enumerate(self.payments, 1)
        )
        self.query_one("#payment-tenders", Static).update(tenders or "No tender yet.")

    def _hint(self, text: str, error: bool = False) -> None:
        hint = self.query_one("#payment-hint", Static)
        hint.update(text)
        hint.set_class(error, "error")

    # -- actions --------------------------------------------------------------------------------
    def action_method(self, name: str) -> None:
        self.method = Tender(name)
        self._refresh()
        if self.method is Tender.WALLET and not self.query_one("#reference", Input).value:
            self._hint("Scan the customer's payment code (or type it in Reference).")
        else:
            self._hint(f"{METHOD_NAMES[self.method]}: enter the amount and press Enter.")
        self._offer_amount(self.remaining)

    def action_undo(self) -> None:
        if self.payments:
            removed = self.payments.pop()
            self._hint(f"Removed {describe_payment(removed, self.currency)}.")
            self._refresh()
            self._offer_amount(self.remaining)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.add_tender()

    def accept_scan(self, scan: ScanIntent) -> None:
        """A code scanned while paying: a wallet code pays the amount in the field."""
        wallet_code = scan.kind == "payment" or (
            self.method is Tender.WALLET and scan.kind in ("unknown", "product")
        )
        if wallet_code:
            self.method = Tender.WALLET
            self.query_one("#reference", Input).value = scan.value or scan.text
            self._refresh()
            self.add_tender()
        elif scan.kind == "invalid":
            self._hint(f"Code not accepted: {scan.problem}. Scan it again.", error=True)
        elif scan.is_product:
            self._hint(
                "That looks like an item. Press Esc to go back to the cart and scan it there; "
                "for a wallet payment press F7 first.",
                error=True,
            )
        else:
            self._hint(f"A {scan.kind} code cannot pay. Scan the customer's payment code.", True)

    def add_tender(self) -> None:
        amount_field = self.query_one("#amount", Input)
        reference_field = self.query_one("#reference", Input)
        remaining = self.remaining
        try:
            typed = parse_amount(amount_field.value or "0")
        except DomainError:
            self._hint(
                f"“{amount_field.value}” is not an amount: type it like 12.50 "
                "(at most 2 decimals).",
                error=True,
            )
            self._offer_amount(remaining)
            return
        if typed == 0:
            self._hint("Enter an amount above zero.", error=True)
            return
        reference = reference_field.value.strip() or None
        try:
            if self.method is Tender.CASH:
                payment = Payment(Tender.CASH, min(typed, remaining), tendered=typed)
            else:
                if typed > remaining:
                    self._hint(
                        f"{METHOD_NAMES[self.method]} pays at most what is due "
                        f"({self._money(remaining)}); only cash gives change.",
                        error=True,
                    )
                    self._offer_amount(remaining)
                    return
                if self.method is Tender.WALLET and reference is None:
                    self._hint("Scan the customer's payment code first.", error=True)
                    reference_field.focus()
                    return
                payment = Payment(self.method, typed, reference=reference)
        except DomainError as exc:
            self._hint(str(exc), error=True)
            return
        self.payments.append(payment)
        if self.remaining <= 0:
            self.dismiss(tuple(self.payments))
            return
        reference_field.value = ""
        self.method = Tender.CASH  # the rest is most often cash; F6/F7 change it
        self._refresh()
        self._offer_amount(self.remaining)
        self._hint(
            f"{self._money(self.remaining)} still due: Enter takes it in cash "
            "(type what was handed over), or F6 card, F7 wallet."
        )
