"""The sale screen's parts: the scan field, the cart table, the totals line and the status bar.

Each part is given values (attributes down) and renders them; none of them talks to the store."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click, Key
from textual.geometry import Region, Size, Spacing
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Label

from pos.domain.cart import Cart, CartLine
from pos.domain.money import format_amount
from pos.ui.messages import CameraState, SyncState
from pos.ui.wedge import DEFAULT_MAX_GAP_S, DEFAULT_MIN_CHARS, looks_scanned

# fixed columns of the cart table, in cells (the item name takes what is left)
NUMBER_WIDTHS = {"qty": 5, "price": 10, "total": 11}


class ScanField(Input):
    """Where codes are typed or arrive from a wedge scanner; Enter submits one code.

    It notes when each key arrived, so a submitted code can be told apart: scanned (a burst)
    or typed by a person. Del on an empty field is left to the screen (it removes the selected
    cart line)."""

    def __init__(self, max_gap: float = DEFAULT_MAX_GAP_S, min_chars: int = DEFAULT_MIN_CHARS):
        super().__init__(
            placeholder="Scan or type a code, then Enter",
            id="scan",
            select_on_focus=False,
        )
        self.max_gap = max_gap
        self.min_chars = min_chars
        self._key_times: list[float] = []
        self.entry_source: Literal["wedge", "keyboard"] = "keyboard"

    async def _on_key(self, event: Key) -> None:
        if event.key in ("enter", "ctrl+m", "ctrl+j"):
            scanned = looks_scanned(self._key_times, event.time, self.max_gap, self.min_chars)
            self.entry_source = "wedge" if scanned else "keyboard"
            self._key_times = []
        elif event.is_printable:
            self._key_times.append(event.time)
        else:
            self._key_times = []  # editing keys: a person is at work
        await super()._on_key(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "delete_right" and not self.value:
            return False
        return super().check_action(action, parameters)


class CartTable(ScrollView, can_focus=True):
    """The cart, one row per line, with a header that stays put.

    Drawn line by line (Textual's line API) from a cache of rendered rows, so a scan re-renders
    only the row it changed: a general-purpose data table re-renders every cell on any change,
    which costs tens of milliseconds per scan with a full cart. Columns are fixed except the
    item name, which takes the remaining width and is cut by display cells (CJK is two)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "cart-table--header",
        "cart-table--cursor",
        "cart-table--odd",
    }

    cursor_row: reactive[int] = reactive(0, init=False)

    def __init__(self, currency: str = "CNY") -> None:
        super().__init__(id="cart")
        self.currency = currency
        self.lines: tuple[CartLine, ...] = ()
        self._rows: dict[int, tuple[object, Strip]] = {}  # row -> (what it shows, its strip)

    # -- geometry -------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.lines)

    @property
    def name_width(self) -> int:
        width = self.scrollable_content_region.width or self.size.width or 80
        fixed = 1 + 3 + 1 + 1 + sum(NUMBER_WIDTHS.values()) + 3 + 1
        return max(8, width - fixed)

    def _update_virtual_size(self) -> None:
        # Never less than the view: while the cart fits, the size stays the same, and a scan
        # does not cost the screen a new layout (a changed virtual size asks for one).
        height = max(len(self.lines) + 1, self.scrollable_content_region.height)
        self.virtual_size = Size(self.scrollable_content_region.width, height)

    def on_resize(self) -> None:
        self._update_virtual_size()
        self.refresh()

    # -- rendering ------------------------------------------------------------------------------
    def _cells(self, number: str, name: str, qty: str, price: str, total: str) -> str:
        width = self.name_width
        if cell_len(name) > width:
            name = set_cell_size(name, width - 1) + "…"
        name = name + " " * (width - cell_len(name))
        q, p, t = NUMBER_WIDTHS["qty"], NUMBER_WIDTHS["price"], NUMBER_WIDTHS["total"]
        return f" {number:>3} {name} {qty:>{q}} {price:>{p}} {total:>{t}} "

    def _header(self, width: int) -> Strip:
        style = self.get_component_rich_style("cart-table--header")
        text = self._cells("#", "Item", "Qty", "Price", "Total")
        return Strip([Segment(text, style)]).crop_extend(0, width, style)

    def _row(self, index: int, width: int) -> Strip:
        line = self.lines[index]
        selected = index == self.cursor_row and self.row_count > 0
        key = (line, width, selected, self.name_width)
        cached = self._rows.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        if selected:
            style = self.get_component_rich_style("cart-table--cursor")
        elif index % 2:
            style = self.get_component_rich_style("cart-table--odd")
        else:
            style = self.rich_style
        text = self._cells(
            str(index + 1),
            line.name,
            str(line.qty),
            format_amount(line.unit_price, self.currency),
            format_amount(line.total, self.currency),
        )
        strip = Strip([Segment(text, style)]).crop_extend(0, width, style)
        self._rows[index] = (key, strip)
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return self._header(width)
        index = self.scroll_offset.y + y - 1
        if 0 <= index < len(self.lines):
            return self._row(index, width)
        return Strip.blank(width, self.rich_style)

    # -- content --------------------------------------------------------------------------------
    def show(self, cart: Cart, select: str | None = None) -> None:
        """Show `cart`; `select` puts the cursor on that sku's line. Only rows whose content
        changed are redrawn."""
        old = self.lines
        self.lines = cart.lines
        for index in [i for i in self._rows if i >= len(self.lines)]:
            del self._rows[index]
        if len(old) != len(self.lines):
            self._update_virtual_size()
        for index in range(max(len(old), len(self.lines))):
            if index >= len(old) or index >= len(self.lines) or old[index] != self.lines[index]:
                self.refresh_line(index + 1)  # row i is line i+1, under the header
        target = self.cursor_row
        if select is not None:
            target = next(
                (i for i, line in enumerate(self.lines) if line.sku == select), self.cursor_row
            )
        self.move_cursor(target)

    def move_cursor(self, row: int, animate: bool = False) -> None:
        if not self.lines:
            self.cursor_row = 0
            return
        self.cursor_row = max(0, min(len(self.lines) - 1, row))
        self.scroll_to_region(
            Region(0, self.cursor_row + 1, 1, 1),
            animate=animate,
            spacing=Spacing(top=1),
            immediate=True,
        )

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)

    def on_click(self, event: Click) -> None:
        index = self.scroll_offset.y + event.y - 1
        if 0 <= index < len(self.lines):
            self.move_cursor(index)

    @property
    def selected_sku(self) -> str | None:
        if not self.lines:
            return None
        return self.lines[min(self.cursor_row, len(self.lines) - 1)].sku


class Totals(Horizontal):
    """Items, tax included and the total to pay, always in sight."""

    def __init__(self, currency: str = "CNY") -> None:
        super().__init__(id="totals")
        self.currency = currency

    def compose(self) -> ComposeResult:
        yield Label("Items 0", id="items")
        yield Label("", id="tax")
        yield Label("", id="guide")
        yield Label("", id="total")

    def show(self, cart: Cart, guide: str | None) -> None:
        # fixed widths (pos.tcss): new text never needs a new layout, which keeps a scan cheap
        self.query_one("#items", Label).update(f"Items {cart.count}", layout=False)
        self.query_one("#tax", Label).update(
            f"Tax incl. {format_amount(cart.tax_total, self.currency)}", layout=False
        )
        self.query_one("#total", Label).update(
            f"TOTAL {format_amount(cart.total, self.currency)}", layout=False
        )
        self.query_one("#guide", Label).update(f"Guide {guide}" if guide else "", layout=False)


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
    orders_new: reactive[int] = reactive(0, init=False)  # online orders waiting for an answer

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
        yield Label("", id="st-orders")

    def on_mount(self) -> None:
        self._show_sync()
        self._show_outbox()
        self._show_camera()
        self._show_orders()

    def watch_sync(self) -> None:
        self._show_sync()

    def watch_outbox_pending(self) -> None:
        self._show_outbox()

    def watch_camera(self) -> None:
        self._show_camera()

    def watch_orders_new(self) -> None:
        self._show_orders()

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

    def _show_orders(self) -> None:
        label = self.query_one("#st-orders", Label)
        count = self.orders_new
        label.update(f"F6 orders: {count} NEW" if count else "")
        label.set_class(bool(count), "new")
