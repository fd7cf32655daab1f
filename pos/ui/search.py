"""Finding an item by name, for goods without a barcode (loose fruit, a torn label).

The search runs as the cashier types, a moment after the last key, so a fast typist does not
queue a search per key on a multi-million-item catalogue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from pos.domain.cart import Product
from pos.domain.money import format_amount

SEARCH_DELAY_S = 0.15


class SearchModal(ModalScreen[Product | None]):
    """Dismisses with the chosen Product, or None on Esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back to cart"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(
        self,
        search: Callable[[str], Sequence[Product]],
        currency: str = "CNY",
        on_error: Callable[[Exception], str] | None = None,
    ) -> None:
        super().__init__()
        self._search = search
        self._on_error = on_error
        self.currency = currency
        self._results: list[Product] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box"):
            yield Static("Find an item by name (Chinese or English)", id="search-title")
            yield Input(placeholder="type part of the name", id="search-text")
            table: DataTable[Text | str] = DataTable(id="search-results", cursor_type="row")
            yield table
            yield Static("", id="search-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#search-results", DataTable)
        table.add_column("Item", key="name")
        table.add_column(Text("Price", justify="right"), key="price")
        table.add_column("SKU", key="sku")
        self.query_one("#search-text", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(SEARCH_DELAY_S, self.run_search)

    def run_search(self) -> None:
        self._timer = None
        text = self.query_one("#search-text", Input).value.strip()
        hint = self.query_one("#search-hint", Static)
        table = self.query_one("#search-results", DataTable)
        table.clear()
        self._results = []
        if not text:
            hint.update("")
            return
        try:
            self._results = list(self._search(text))
        except Exception as exc:  # a store failure: say so, keep the till running
            hint.update(self._on_error(exc) if self._on_error else f"Search failed: {exc}")
            return
        for product in self._results:
            table.add_row(
                product.name,
                Text(format_amount(product.price, self.currency), justify="right"),
                product.sku,
                key=product.sku,
            )
        hint.update(
            f"{len(self._results)} found: ↑/↓ to choose, Enter to add"
            if self._results
            else f"Nothing called “{text}”. Try fewer letters."
        )

    def action_move(self, step: int) -> None:
        table = self.query_one("#search-results", DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._timer is not None:  # Enter before the pause: search now, then choose
            self._timer.stop()
            self._timer = None
            self.run_search()
        self._choose()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._choose()

    def _choose(self) -> None:
        table = self.query_one("#search-results", DataTable)
        if not self._results:
            return
        row = min(table.cursor_row, len(self._results) - 1)
        sku = table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        chosen = next((p for p in self._results if p.sku == sku), None)
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)
