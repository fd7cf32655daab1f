"""The sale screen's parts: the scan field, the cart table, the totals line and the status bar.

Each part is given values (attributes down) and renders them; none of them talks to the store."""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Label

from pos.domain.cart import Cart, CartLine
from pos.domain.money import format_amount
from pos.ui.messages import CameraState, SyncState

# fixed columns of the cart table, in cells (the item name takes what is left)
NUMBER_WIDTHS = {"qty": 5, "price": 10, "total": 11}


class ScanField(Input):
    """Where codes are typed or arrive from a wedge scanner; Enter submits one code.

    Del on an empty field is left to the screen (it removes the selected cart line)."""

    def __init__(self) -> None:
        super().__init__(
            placeholder="Scan or type a code, then Enter",
            id="scan",
            select_on_focus=False,
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "delete_right" and not self.value:
            return False
        return super().check_action(action, parameters)


def _right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


class CartTable(DataTable[Text | str]):
    """The cart, one row per line, keyed by sku. It mirrors the Cart value it is given."""

    def __init__(self, currency: str = "CNY") -> None:
        super().__init__(id="cart", cursor_type="row", zebra_stripes=True, show_cursor=True)
        self.currency = currency
        self._shown: dict[str, tuple[int, CartLine]] = {}  # sku -> (number shown, line)
        self._name_width = 0
        self.can_focus = True

    def on_mount(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        if self._name_width != self._wanted_name_width():
            self._rebuild()

    def _wanted_name_width(self) -> int:
        inner = self.scrollable_content_region.width or self.size.width or 80
        padding = 2 * self.cell_padding * 5  # five columns
        fixed = 3 + sum(NUMBER_WIDTHS.values())
        return max(12, inner - padding - fixed - 1)

    def _build_columns(self) -> None:
        self._name_width = self._wanted_name_width()
        self.add_column("#", width=3, key="no")
        self.add_column("Item", width=self._name_width, key="name")
        self.add_column(_right("Qty"), width=NUMBER_WIDTHS["qty"], key="qty")
        self.add_column(_right("Price"), width=NUMBER_WIDTHS["price"], key="price")
        self.add_column(_right("Total"), width=NUMBER_WIDTHS["total"], key="total")

    def _rebuild(self) -> None:
        lines = tuple(line for _, line in self._shown.values())
        selected = self.selected_sku
        self.clear(columns=True)
        self._shown = {}
        self._build_columns()
        self.show(Cart(lines), select=selected)

    def _name_cell(self, name: str) -> Text:
        text = Text(name, no_wrap=True, overflow="ellipsis")
        # crop by display cells, not characters: a CJK character takes two cells
        if cell_len(name) > self._name_width:
            text.truncate(self._name_width, overflow="ellipsis")
        return text

    def _cells(self, index: int, line: CartLine) -> list[Text | str]:
        return [
            _right(str(index)),
            self._name_cell(line.name),
            _right(str(line.qty), "bold"),
            _right(format_amount(line.unit_price, self.currency)),
            _right(format_amount(line.total, self.currency), "bold"),
        ]

    def show(self, cart: Cart, select: str | None = None) -> None:
        """Make the table show `cart`: rows are added, changed or removed, not all redrawn."""
        wanted = {line.sku: line for line in cart.lines}
        for sku in [sku for sku in self._shown if sku not in wanted]:
            self.remove_row(sku)
            del self._shown[sku]
        if list(self._shown) != [sku for sku in wanted if sku in self._shown]:
            self.clear()  # Cart's own operations never reorder lines; stay correct anyway
            self._shown = {}
        for index, line in enumerate(cart.lines, start=1):
            shown = self._shown.get(line.sku)
            if shown is None:
                self.add_row(*self._cells(index, line), key=line.sku)
            elif shown != (index, line):
                for column, value in zip(
                    ("no", "name", "qty", "price", "total"),
                    self._cells(index, line),
                    strict=True,
                ):
                    self.update_cell(line.sku, column, value)
            self._shown[line.sku] = (index, line)
        if select is not None and select in self._shown:
            self.move_cursor(row=self.get_row_index(select), animate=False)

    @property
    def selected_sku(self) -> str | None:
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        return key


class Totals(Horizontal):
    """Items, tax included and the total to pay, always in sight."""

    def __init__(self, currency: str = "CNY") -> None:
        super().__init__(id="totals")
        self.currency = currency

    def compose(self) -> ComposeResult:
        yield Label("", id="guide")
        yield Label("Items 0", id="items")
        yield Label("", id="tax")
        yield Label("", id="total")

    def show(self, cart: Cart, guide: str | None) -> None:
        self.query_one("#items", Label).update(f"Items {cart.count}")
        self.query_one("#tax", Label).update(
            f"Tax incl. {format_amount(cart.tax_total, self.currency)}"
        )
        self.query_one("#total", Label).update(f"TOTAL {format_amount(cart.total, self.currency)}")
        self.query_one("#guide", Label).update(f"Guide {guide}" if guide else "")


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)}s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds // 3600)}h"


class StatusBar(Horizontal):
    """Store, device, link to HQ, outbox depth, camera. Fed by the app (values, not queries)."""

    sync: reactive[SyncState] = reactive(SyncState, init=False)
    outbox_pending: reactive[int | None] = reactive(None, init=False)
    camera: reactive[CameraState | None] = reactive(None, init=False)

    def __init__(self, store_id: str, device_id: str) -> None:
        super().__init__(id="status")
        self.store_id = store_id
        self.device_id = device_id

    def compose(self) -> ComposeResult:
        yield Label(f"Store {self.store_id}", id="st-store")
        yield Label(f"Till {self.device_id}", id="st-device")
        yield Label("", id="st-sync")
        yield Label("", id="st-outbox")
        yield Label("", id="st-camera")

    def on_mount(self) -> None:
        self._show_sync()
        self._show_outbox()
        self._show_camera()

    def watch_sync(self) -> None:
        self._show_sync()

    def watch_outbox_pending(self) -> None:
        self._show_outbox()

    def watch_camera(self) -> None:
        self._show_camera()

    def _show_sync(self) -> None:
        label = self.query_one("#st-sync", Label)
        state = self.sync
        if state.online:
            text = "● online"
            if state.last_sync is not None:
                ago = (datetime.now(state.last_sync.tzinfo) - state.last_sync).total_seconds()
                text += f" {_age(max(0.0, ago))} ago"
        else:
            text = "○ offline"
            if state.oldest_pending_age is not None and state.pending:
                text += f" (oldest {_age(state.oldest_pending_age.total_seconds())})"
        if state.clock_skew is not None and abs(state.clock_skew.total_seconds()) > 120:
            text += " clock!"
        label.update(text)
        label.set_class(state.online, "online")
        label.set_class(not state.online, "offline")

    def _show_outbox(self) -> None:
        label = self.query_one("#st-outbox", Label)
        count = self.outbox_pending
        label.update("outbox ?" if count is None else f"outbox {count}")
        label.set_class(bool(count), "pending")

    def _show_camera(self) -> None:
        label = self.query_one("#st-camera", Label)
        camera = self.camera
        state = camera.state if camera is not None else "off"
        label.update(f"cam {state}")
        label.set_class(state == "lost", "lost")
