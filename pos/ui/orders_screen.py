"""The store's online-order inbox (F6), and the screens of its jobs: answer an order, pick it by
scanning, pack it (ready for pickup, or shipped with the courier's label), hand it over on the
customer's pickup code, answer HQ's cancel requests, put goods back on the shelf. Also the
endless-aisle form the sale screen opens for an item the store lacks.

Every step is one call of the order service (one transaction, its event queued for HQ with the
epoch it acted under), so it works the same offline. A refused step is a message in the user's
words and a bell, never an exception. The screens only show values; the app feeds the badge and
reloads an open inbox after each sync round."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from pos.domain.errors import DomainError
from pos.domain.orders import REJECT_REASONS, STAGE_WORDS, OrderError, PickLine
from pos.store.errors import StoreError
from pos.ui.messages import ScanReceived
from pos.ui.scan_routing import ScanIntent
from pos.ui.widgets import ScanField

if TYPE_CHECKING:
    from pos.domain.cart import Product
    from pos.services.orders import OrderService
    from pos.services.wakeups import WakeupThread
    from pos.store.orders import StoredOrder, Task

T = TypeVar("T")

STEP_WORDS = {
    "order.accepted": "accepted",
    "order.rejected": "rejected",
    "order.picked": "picked",
    "order.ready": "ready",
    "order.handed_over": "handed over",
    "order.shipped": "shipped",
    "order.cancel_accepted": "agreed to cancel",
    "order.cancel_refused": "refused to cancel",
    "order.hold_at_risk": "till sale took held stock",
    "order.returned_to_shelf": "put back on the shelf",
}
HQ_WORDS = {
    "pending": "waiting to send",
    "acked": "HQ has it",
    "superseded": "SUPERSEDED",
    "rejected": "REFUSED by HQ",
    "pruned": "sent",
}


# ---------------------------------------------------------------------------------------------
# the app's hooks (the app calls these; they keep its own code small)


def order_service(app: Any) -> OrderService:
    """The app's order service (one per open store, same thread and clock as the sale)."""
    service: OrderService | None = getattr(app, "_order_service", None)
    if service is None:
        from pos.services.orders import OrderService

        service = OrderService(app.store, clock=app.service.clock)
        app._order_service = service
    return service


def refresh_orders(app: Any) -> None:
    """Badge on the sale screen, a bell when a new order arrived, and an open inbox reloaded."""
    from pos.store import orders as store_orders

    try:
        waiting = store_orders.awaiting_answer(app.store.conn)
        unseen = store_orders.new_count(app.store.conn)
    except StoreError:
        return
    before = getattr(app, "_orders_unseen", 0)
    app._orders_unseen = unseen
    if unseen > before:
        app.bell()
        app.notify(
            f"{unseen} new online order(s) to answer. Press F6 for the orders.",
            title="New online order",
            timeout=10,
        )
    sale = getattr(app, "sale_screen", None)
    if sale is not None and sale.is_mounted:
        with contextlib.suppress(Exception):  # a status bar without the badge: nothing to show
            sale.status_update(orders_new=waiting)
    screen = app.screen
    if isinstance(screen, OrdersScreen):
        screen.reload()


def open_orders(app: Any) -> None:
    if not isinstance(app.screen, OrdersScreen):
        app.push_screen(OrdersScreen(order_service(app)))


def open_handover(
    app: Any, scan: ScanIntent | None = None, *, code: str = "", order_id: str | None = None
) -> None:
    """The handover dialog; with a scanned pickup QR (or P-code), or a code and the order it
    was found for, the order is looked up at once."""
    if scan is not None:
        order_id = getattr(scan.event, "order_id", None)
        code = scan.value or ""

    def done(order_id: str | None) -> None:
        if order_id:
            refresh_orders(app)
            _sync_now(app)

    app.push_screen(HandoverModal(order_service(app), code=code, order_id=order_id), done)


def open_pickup_code(app: Any, text: str) -> bool:
    """A bare code typed or scanned at the sale screen that is the pickup code of an order
    ready here: its handover opens, the same dialog as from the inbox (two ready orders that
    share the short code: the dialog asks for the customer's QR). False when no ready order
    has it: the sale screen looks it up as a product, as before."""
    try:
        ready = order_service(app).ready_with_code(text)
    except (StoreError, sqlite3.Error):
        return False  # the product lookup that follows says what is wrong with the file
    if not ready:
        return False
    only = ready[0].order_id if len(ready) == 1 else None
    open_handover(app, code=text.strip(), order_id=only)
    return True


def open_endless_aisle(app: Any, product: Product | None) -> None:
    """Ask HQ for a delivery order of an item this store cannot sell now."""
    service = order_service(app)
    fields = [
        Field("sku", "Item (SKU)", "scan or type the item", product.sku if product else ""),
        Field("qty", "Quantity", "1", "1"),
        Field("name", "Customer name", "", ""),
        Field("phone", "Phone", "", ""),
        Field("address", "Delivery address", "street, number, flat", ""),
        Field("lat", "Latitude", "optional, e.g. 31.2304", ""),
        Field("lon", "Longitude", "optional, e.g. 121.4737", ""),
    ]
    title = "Order for delivery (endless aisle)"
    if product is not None:
        title += f": {product.name}"

    def submit(values: dict[str, str]) -> str:
        sku = values["sku"].strip()
        found = service.lookup(sku) if sku else None
        if found is not None:
            sku = found.sku
        try:
            qty = int(values["qty"] or "1")
        except ValueError:
            raise OrderError("The quantity is a whole number.") from None
        return service.request_delivery(
            [(sku, qty)],
            name=values["name"],
            phone=values["phone"],
            address=values["address"],
            lat=values["lat"] or None,
            lon=values["lon"] or None,
        )

    def done(request_id: str | None) -> None:
        if request_id:
            app.notify(
                f"Delivery order requested ({request_id}). HQ sends it to a store that has the "
                "item; it goes out with the next sync (queued while offline).",
                title="Order for delivery",
                timeout=10,
            )
            _sync_now(app)

    hint = (
        "HQ creates the order and sends it to the nearest store with stock. Without latitude "
        "and longitude the store's own location is used (setting store.lat / store.lon)."
    )
    app.push_screen(FormModal(title, fields, submit, hint=hint, scan_field="sku"), done)


def start_wakeups(app: Any) -> None:
    """Listen to HQ's wake-ups in a thread worker (a new order reaches the inbox at once).
    Not with an in-process test transport: an event stream never ends there."""
    if getattr(app.settings, "sync_transport", None) is not None:
        return

    def listen() -> None:
        from pos.services.sync import hq_settings
        from pos.services.wakeups import WakeupThread

        settings = app.call_from_thread(hq_settings, app.store)
        if settings is None:
            return
        thread = WakeupThread(settings, lambda: _sync_now_from_thread(app))
        app._wakeups = thread
        if getattr(app, "_closing_wakeups", False):
            return
        thread.run()

    app.run_worker(
        listen, thread=True, name="wake-ups from HQ", group="wakeups", exit_on_error=False
    )


def stop_wakeups(app: Any) -> None:
    app._closing_wakeups = True
    thread: WakeupThread | None = getattr(app, "_wakeups", None)
    if thread is not None:
        thread.stop(timeout=3)


def _sync_now(app: Any) -> None:
    action = getattr(app, "action_sync_now", None)
    if action is not None:
        action()


def _sync_now_from_thread(app: Any) -> None:
    link = getattr(app, "sync_link", None)
    if link is not None:
        link.sync_now()  # thread-safe


def _countdown(accept_by: datetime, now: datetime) -> Text:
    seconds = int((accept_by - now).total_seconds())
    if seconds >= 0:
        style = "bold red" if seconds < 120 else ("yellow" if seconds < 300 else "")
        return Text(f"{seconds // 60:02d}:{seconds % 60:02d} left", style=style)
    late = -seconds
    return Text(f"LATE {late // 60:02d}:{late % 60:02d}", style="bold red")


def _explain(exc: Exception) -> str:
    if isinstance(exc, (DomainError, StoreError)):
        return str(exc)
    return f"Unexpected problem: {exc}. Nothing was changed; try again or call the manager."


def _code_of(text: str) -> tuple[str | None, str]:
    """(order id, digits) of what was typed or scanned: ``PICKUP:<order>:<code>``, ``P<code>``
    or the bare code."""
    text = text.strip()
    if text.upper().startswith("PICKUP:"):
        parts = text.split(":")
        if len(parts) == 3:
            return parts[1], parts[2].strip()
    if text[:1] in ("P", "p") and text[1:].isdigit():
        return None, text[1:]
    return None, text


def _items(order: StoredOrder) -> str:
    return ", ".join(f"{ln.name} x{ln.qty}" for ln in order.lines if ln.qty > 0) or "-"


# ---------------------------------------------------------------------------------------------
# the inbox


class OrdersScreen(Screen[None]):
    """Online orders of this store: new ones first with their countdown, then the ones in
    progress, then the finished; the selected order's lines with the store's stock; open tasks;
    steps HQ answered superseded or refused."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "accept", "Accept"),
        Binding("r", "reject", "Reject"),
        Binding("p", "pick", "Pick"),
        Binding("k", "ready", "Ready"),
        Binding("s", "ship", "Ship"),
        Binding("h", "handover", "Hand over"),
        Binding("c", "answer_cancel", "Cancel request"),
        Binding("t", "task_done", "Task done"),
        Binding("escape", "back", "Back to sale"),
    ]
    DEFAULT_CSS = """
    OrdersScreen #orders-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    OrdersScreen #orders { height: 1fr; }
    OrdersScreen #order-detail { height: auto; max-height: 12; padding: 0 1;
        border-top: solid $primary; }
    OrdersScreen #tasks-title, OrdersScreen #troubled-title { padding: 0 1; text-style: bold; }
    OrdersScreen #tasks { height: auto; max-height: 6; }
    OrdersScreen #troubled { height: auto; max-height: 5; padding: 0 1; color: $warning; }
    """

    def __init__(self, service: OrderService) -> None:
        super().__init__(id="orders-screen")
        self.service = service
        self.orders: list[StoredOrder] = []
        self.tasks: list[Task] = []
        self._ready = False  # columns made: reloads before that have nothing to fill

    def compose(self) -> ComposeResult:
        yield Static("Online orders", id="orders-title")
        yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        yield Static("", id="order-detail")
        yield Label("Tasks", id="tasks-title")
        yield DataTable(id="tasks", cursor_type="row")
        yield Label("", id="troubled-title")
        yield Static("", id="troubled")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#orders", DataTable)
        table.add_column("Order", key="order")
        table.add_column("Type", key="kind")
        table.add_column("Status", key="status")
        table.add_column("Answer by", key="accept")
        table.add_column("Items", key="items")
        table.add_column("Customer", key="customer")
        tasks = self.query_one("#tasks", DataTable)
        tasks.add_column("Task", key="task")
        tasks.add_column("Order", key="order")
        tasks.add_column("What to do", key="what")
        self._ready = True
        self.reload()
        self.set_interval(1.0, self.tick)
        table.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    # -- content --------------------------------------------------------------------------------
    def reload(self) -> None:
        if not self._ready:
            return
        try:
            inbox = self.service.inbox()
        except StoreError as exc:
            self.notify(_explain(exc), severity="error")
            return
        self.orders = list(inbox.orders)
        self.tasks = list(inbox.tasks)
        for order in self.orders:
            if order.stage == "new" and not order.seen:
                with contextlib.suppress(StoreError):
                    self.service.mark_seen(order.order_id)
        table = self.query_one("#orders", DataTable)
        keep = self.selected_id
        table.clear()
        now = self.service.clock()
        for order in self.orders:
            table.add_row(*self._cells(order, now), key=order.order_id)
        if keep is not None:
            for index, order in enumerate(self.orders):
                if order.order_id == keep:
                    table.move_cursor(row=index)
                    break
        tasks = self.query_one("#tasks", DataTable)
        tasks.clear()
        for task in self.tasks:
            tasks.add_row(*self._task_cells(task), key=str(task.id))
        self.query_one("#tasks-title", Label).update(
            f"Tasks ({len(self.tasks)}): T marks the selected one done"
            if self.tasks
            else "Tasks: none"
        )
        waiting = sum(1 for o in self.orders if o.stage == "new")
        self.query_one("#orders-title", Static).update(
            f"Online orders: {waiting} to answer, "
            f"{sum(1 for o in self.orders if o.stage in ('accepted', 'picked', 'ready'))} in "
            "progress (keys below; a scanned pickup QR opens the handover)"
        )
        troubled = list(inbox.troubled)
        self.query_one("#troubled-title", Label).update(
            f"Steps HQ did not take as current ({len(troubled)})" if troubled else ""
        )
        self.query_one("#troubled", Static).update(
            "\n".join(
                f"{st.order_id}: {STEP_WORDS.get(st.type, st.type)} (epoch {st.epoch}) "
                f"{HQ_WORDS.get(st.state, st.state)}: {st.reason or ''}"
                for st in troubled[:5]
            )
        )
        self.show_detail()

    def _cells(self, order: StoredOrder, now: datetime) -> tuple[Any, ...]:
        status = STAGE_WORDS.get(order.stage, order.stage)
        if order.assignment == "cancel_requested" and order.stage in (
            "accepted",
            "picked",
            "ready",
        ):
            status += ", HQ ASKS TO CANCEL"
        style = "bold" if order.stage == "new" else ""
        return (
            Text(order.order_id, style=style),
            "pickup" if order.delivery == "pickup" else "delivery",
            Text(status, style="bold yellow" if order.stage == "new" else ""),
            _countdown(order.accept_by, now) if order.stage == "new" else "",
            _items(order),
            str(order.customer.get("name", "")),
        )

    @staticmethod
    def _task_cells(task: Task) -> tuple[str, str, str]:
        if task.kind == "return_to_shelf":
            lines = ", ".join(f"{ln['name']} x{ln['qty']}" for ln in task.detail.get("lines", []))
            return ("RETURN TO SHELF", task.order_id, f"{lines} ({task.detail.get('why', '')})")
        return ("ANSWER HQ", task.order_id, "HQ asks to cancel: C to agree or refuse")

    def tick(self) -> None:
        """The countdowns of orders waiting for an answer."""
        table = self.query_one("#orders", DataTable)
        now = self.service.clock()
        for order in self.orders:
            if order.stage == "new":
                with contextlib.suppress(Exception):  # a row reloaded meanwhile
                    table.update_cell(order.order_id, "accept", _countdown(order.accept_by, now))

    @property
    def selected_id(self) -> str | None:
        table = self.query_one("#orders", DataTable)
        if not table.row_count:
            return None
        row = min(table.cursor_row, table.row_count - 1)
        value = table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        return str(value) if value is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "orders":
            self.show_detail()

    def show_detail(self) -> None:
        detail = self.query_one("#order-detail", Static)
        order_id = self.selected_id
        if order_id is None:
            detail.update("No online orders at the moment.")
            return
        try:
            card = self.service.card(order_id)
        except (OrderError, StoreError) as exc:
            detail.update(_explain(exc))
            return
        o = card.order
        head = (
            f"{o.order_id}  {o.delivery}  {o.customer.get('name', '')} "
            f"{o.customer.get('phone', '')}  epoch {o.epoch}  HQ: {o.assignment}"
        )
        if o.address:
            head += f"\nAddress: {o.address.get('text', '')}"
        if o.tracking:
            head += f"  Tracking: {o.tracking}"
        if o.note:
            head += f"\nNote: {o.note}"
        rows = [head]
        for ls in card.lines:
            ln = ls.line
            sub = f" -> {ln.substitute_sku}" if ln.substitute_sku else ""
            rows.append(
                f"  {ln.line_id:<4} {ln.name[:28]:<28} {ln.sku}{sub}  x{ln.qty}  picked {ln.picked}"
                f"   on hand {ls.on_hand}, available {ls.available}"
            )
        if card.steps:
            rows.append(
                "Steps: "
                + "; ".join(
                    f"{STEP_WORDS.get(st.type, st.type)} ({HQ_WORDS.get(st.state, st.state)})"
                    for st in card.steps[-6:]
                )
            )
        detail.update("\n".join(rows))

    # -- scans ------------------------------------------------------------------------------------
    def accept_scan(self, scan: ScanIntent) -> None:
        if scan.kind == "pickup":
            open_handover(self.app, scan)
        elif scan.is_product:
            self.notify("To pick, select the order and press P, then scan the items.")
        else:
            self.notify("That code is not used in the orders list.", severity="warning")

    # -- steps ------------------------------------------------------------------------------------
    def _selected(self) -> StoredOrder | None:
        order_id = self.selected_id
        if order_id is None:
            self.notify("There is no order to work on.", severity="warning")
            return None
        return next((o for o in self.orders if o.order_id == order_id), None)

    def _run(self, step: Callable[[], object], done: str) -> bool:
        try:
            step()
        except (DomainError, StoreError) as exc:
            self.app.bell()
            self.notify(_explain(exc), title="Not done", severity="error", timeout=8)
            self.reload()
            return False
        self.notify(done, timeout=5)
        refresh_orders(self.app)
        self.reload()
        _sync_now(self.app)
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_accept(self) -> None:
        order = self._selected()
        if order is not None:
            self._run(
                lambda: self.service.accept(order.order_id),
                f"Order {order.order_id} accepted: its items are held. Press P to pick it.",
            )

    def action_reject(self) -> None:
        order = self._selected()
        if order is None:
            return

        def chosen(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                reason, note = answer
                self._run(
                    lambda: self.service.reject(order.order_id, reason, note),
                    f"Order {order.order_id} rejected ({REJECT_REASONS[reason]}). HQ sends it "
                    "to another store.",
                )

        self.app.push_screen(RejectModal(order.order_id), chosen)

    def action_pick(self) -> None:
        order = self._selected()
        if order is None:
            return
        if order.stage != "accepted":
            self.app.bell()
            self.notify(
                f"Order {order.order_id} is {STAGE_WORDS.get(order.stage, order.stage)}: "
                + ("accept it first (A)." if order.stage == "new" else "there is nothing to pick."),
                severity="warning",
            )
            return
        self.app.push_screen(PickScreen(self.service, order.order_id))

    def action_ready(self) -> None:
        order = self._selected()
        if order is not None:
            self._run(
                lambda: self.service.ready(order.order_id),
                f"Order {order.order_id} is ready: HQ tells the customer to come with the pickup "
                "code.",
            )

    def action_ship(self) -> None:
        order = self._selected()
        if order is None:
            return
        service = self.service

        def submit(values: dict[str, str]) -> str:
            service.ship(order.order_id, values["tracking"])
            return values["tracking"]

        def done(tracking: str | None) -> None:
            if tracking:
                self.notify(f"Order {order.order_id} shipped ({tracking}). Stock moved.")
                refresh_orders(self.app)
                self.reload()
                _sync_now(self.app)

        self.app.push_screen(
            FormModal(
                f"Ship order {order.order_id}",
                [Field("tracking", "Tracking code", "scan the courier's label", "")],
                submit,
                hint="Scan the label the courier stuck on the parcel.",
                scan_field="tracking",
            ),
            done,
        )

    def action_handover(self) -> None:
        open_handover(self.app)

    def action_answer_cancel(self) -> None:
        order = self._selected()
        if order is None:
            return
        if order.assignment != "cancel_requested":
            self.notify("HQ has not asked to cancel this order.", severity="warning")
            return
        service = self.service

        def submit(values: dict[str, str]) -> str:
            agree = values["answer"].strip().lower() in ("y", "yes", "agree")
            service.answer_cancel(order.order_id, agree, values["reason"])
            return "agreed" if agree else "refused"

        def done(answer: str | None) -> None:
            if answer:
                self.notify(f"Cancel request for {order.order_id} {answer}.")
                refresh_orders(self.app)
                self.reload()
                _sync_now(self.app)

        self.app.push_screen(
            FormModal(
                f"HQ asks to cancel order {order.order_id}",
                [
                    Field("answer", "Agree? (Y/N)", "Y to cancel, N to keep it", "Y"),
                    Field("reason", "Reason if N", "e.g. already packed", ""),
                ],
                submit,
                hint="Agreeing voids the holds; anything picked gets a return-to-shelf task.",
            ),
            done,
        )

    def action_task_done(self) -> None:
        table = self.query_one("#tasks", DataTable)
        if not table.row_count:
            self.notify("There is no open task.", severity="warning")
            return
        row = min(table.cursor_row, table.row_count - 1)
        key = table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        task_id = int(str(key))
        self._run(lambda: self.service.task_done(task_id), "Task done.")


# ---------------------------------------------------------------------------------------------
# picking


class PickScreen(Screen[None]):
    """Pick one order by scanning each unit. The list is in walking order; a wrong item is
    refused with a red message and a bell."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "done", "Done picking"),
        Binding("f4", "substitute", "Substitute"),
        Binding("f5", "quantity", "Type quantity"),
        Binding("escape", "back", "Back (progress kept)"),
    ]
    DEFAULT_CSS = """
    PickScreen #pick-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    PickScreen #pick-lines { height: 1fr; }
    PickScreen #pick-msg { height: 3; padding: 0 1; text-style: bold; }
    PickScreen #pick-msg.wrong { background: $error 30%; color: $text; }
    PickScreen #pick-msg.right { color: $success; }
    """

    def __init__(self, service: OrderService, order_id: str) -> None:
        super().__init__(id="pick-screen")
        self.service = service
        self.order_id = order_id
        self.lines: tuple[PickLine, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(f"Picking order {self.order_id}: scan each item", id="pick-title")
        yield DataTable(id="pick-lines", cursor_type="row", zebra_stripes=True)
        yield Static("", id="pick-msg")
        yield ScanField()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#pick-lines", DataTable)
        table.add_column("Item", key="item")
        table.add_column("SKU", key="sku")
        table.add_column(Text("Qty", justify="right"), key="qty")
        table.add_column(Text("Picked", justify="right"), key="picked")
        table.add_column("Note", key="note")
        self.load()
        self.query_one(ScanField).focus()

    def load(self) -> None:
        self.lines = self.service.pick_list(self.order_id)
        table = self.query_one("#pick-lines", DataTable)
        row = table.cursor_row
        table.clear()
        for ln in self.lines:
            done = ln.remaining == 0
            table.add_row(
                Text(ln.name, style="green" if done else ""),
                ln.wanted_sku if not ln.substitute_sku else f"{ln.substitute_sku} (for {ln.sku})",
                Text(str(ln.qty), justify="right"),
                Text(str(ln.picked), justify="right", style="bold green" if done else "bold"),
                "done" if done else "",
                key=ln.line_id,
            )
        if self.lines:
            table.move_cursor(row=min(row, len(self.lines) - 1))
        left = sum(ln.remaining for ln in self.lines)
        self.query_one("#pick-title", Static).update(
            f"Picking order {self.order_id}: "
            + (f"{left} unit(s) to go, scan each item" if left else "all picked, F2 to finish")
        )

    def _message(self, text: str, wrong: bool) -> None:
        msg = self.query_one("#pick-msg", Static)
        msg.update(text)
        msg.set_class(wrong, "wrong")
        msg.set_class(not wrong, "right")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        field = self.query_one(ScanField)
        if event.input is not field:
            return
        event.stop()
        text = event.value.strip()
        field.clear()
        if text:
            self.post_message(ScanReceived(text, field.entry_source))

    def accept_scan(self, scan: ScanIntent) -> None:
        if not scan.is_product:
            self.app.bell()
            self._message(f"{scan.text} is not an item: scan the item's barcode.", wrong=True)
            return
        try:
            result = self.service.pick_scan(self.order_id, scan.lookup or scan.text)
        except (DomainError, StoreError) as exc:
            self.app.bell()
            self._message(_explain(exc), wrong=True)
            self.notify(_explain(exc), title="Not picked", severity="error", timeout=6)
            return
        ln = result.line
        self._message(f"OK {ln.name}: {ln.picked} of {ln.qty}", wrong=False)
        self.load()
        if result.done:
            self.notify("Everything is picked. Press F2 to finish.", timeout=6)

    def _selected_line(self) -> PickLine | None:
        table = self.query_one("#pick-lines", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((ln for ln in self.lines if ln.line_id == key), None)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_done(self) -> None:
        short = [ln for ln in self.lines if ln.short and not ln.reason]
        if not short:
            self._finish({})
            return

        def answered(reasons: dict[str, str] | None) -> None:
            if reasons is not None:
                self._finish(reasons)

        self.app.push_screen(ShortPickModal(short), answered)

    def _finish(self, reasons: dict[str, str]) -> None:
        try:
            order = self.service.confirm_pick(self.order_id, reasons)
        except (DomainError, StoreError) as exc:
            self.app.bell()
            self.notify(_explain(exc), title="Not done", severity="error", timeout=8)
            return
        next_step = (
            "pack it and press K (ready for pickup)"
            if order.delivery == "pickup"
            else "pack it and press S to ship (scan the courier's label)"
        )
        short = [ln for ln in order.lines if ln.short]
        self.notify(
            f"Order {self.order_id} picked"
            + (f" ({len(short)} line(s) short: HQ finds the rest elsewhere)" if short else "")
            + f": {next_step}.",
            timeout=8,
        )
        _sync_now(self.app)
        self.app.pop_screen()

    def action_substitute(self) -> None:
        line = self._selected_line()
        if line is None:
            return
        service = self.service

        def submit(values: dict[str, str]) -> PickLine:
            return service.substitute(self.order_id, line.line_id, values["code"], values["reason"])

        def done(result: PickLine | None) -> None:
            if result is not None:
                self.load()
                self._message(
                    f"{line.name} will be replaced by {result.substitute_sku}: scan those now.",
                    wrong=False,
                )

        self.app.push_screen(
            FormModal(
                f"Substitute for {line.name}",
                [
                    Field("code", "Substitute item", "scan it", ""),
                    Field("reason", "Reason", "e.g. out of stock, same size, customer agreed", ""),
                ],
                submit,
                scan_field="code",
            ),
            done,
        )

    def action_quantity(self) -> None:
        line = self._selected_line()
        if line is None:
            return
        if not self.service.qty_entry_allowed():
            self.app.bell()
            self._message("Each unit must be scanned here (typing quantities is off).", True)
            return
        service = self.service

        def submit(values: dict[str, str]) -> PickLine:
            try:
                qty = int(values["qty"])
            except ValueError:
                raise OrderError("Type a whole number.") from None
            return service.set_picked(self.order_id, line.line_id, qty)

        def done(result: PickLine | None) -> None:
            if result is not None:
                self.load()

        self.app.push_screen(
            FormModal(
                f"Picked quantity of {line.name}",
                [Field("qty", f"Picked (0-{line.qty})", "", str(line.picked))],
                submit,
            ),
            done,
        )


class ShortPickModal(ModalScreen[dict[str, str] | None]):
    """Why lines are short: one reason for all of them (the common case), editable per line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back to picking"),
        Binding("f2", "submit", "Confirm short pick"),
    ]
    DEFAULT_CSS = """
    ShortPickModal { align: center middle; }
    ShortPickModal #short-box { width: 80; height: auto; border: thick $warning; padding: 1 2;
        background: $surface; }
    ShortPickModal Input { margin-bottom: 1; }
    """

    def __init__(self, lines: Sequence[PickLine]) -> None:
        super().__init__()
        self.lines = tuple(lines)

    def compose(self) -> ComposeResult:
        with Vertical(id="short-box"):
            yield Static(
                "These lines are short. HQ finds the rest at another store.\n"
                "Say why (e.g. not on the shelf, damaged, expired), then Enter:"
            )
            for ln in self.lines:
                yield Label(f"{ln.name}: {ln.picked} of {ln.qty}")
                yield Input(
                    placeholder="reason", id=f"reason-{ln.line_id}", value="not on the shelf"
                )
            yield Static("", id="short-hint")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        reasons = {
            ln.line_id: self.query_one(f"#reason-{ln.line_id}", Input).value.strip()
            for ln in self.lines
        }
        if not all(reasons.values()):
            self.query_one("#short-hint", Static).update("Every short line needs a reason.")
            return
        self.dismiss(reasons)

    def action_cancel(self) -> None:
        self.dismiss(None)


# ---------------------------------------------------------------------------------------------
# dialogs


class RejectModal(ModalScreen[tuple[str, str] | None]):
    """The reason for rejecting an order (HQ's codes), and an optional note."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Keep the order")]
    DEFAULT_CSS = """
    RejectModal { align: center middle; }
    RejectModal #reject-box { width: 70; height: auto; border: thick $error; padding: 1 2;
        background: $surface; }
    RejectModal OptionList { height: auto; margin: 1 0; }
    """

    def __init__(self, order_id: str) -> None:
        super().__init__()
        self.order_id = order_id

    def compose(self) -> ComposeResult:
        with Vertical(id="reject-box"):
            yield Static(f"Reject order {self.order_id}: why? (HQ sends it to another store)")
            yield OptionList(
                *(Option(words, id=code) for code, words in REJECT_REASONS.items()),
                id="reject-reasons",
            )
            yield Input(placeholder="note (optional), then choose a reason with Enter", id="note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        note = self.query_one("#note", Input).value.strip()
        self.dismiss((str(event.option.id), note))

    def action_cancel(self) -> None:
        self.dismiss(None)


class Field:
    """One input of a FormModal."""

    def __init__(self, key: str, label: str, placeholder: str = "", value: str = "") -> None:
        self.key = key
        self.label = label
        self.placeholder = placeholder
        self.value = value


class FormModal(ModalScreen[T | None], Generic[T]):
    """A few inputs and a submit that runs the step: its error stays on the form (nothing was
    changed), success dismisses with the step's result. A scan lands in ``scan_field``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("f2", "submit", "Confirm"),
    ]
    DEFAULT_CSS = """
    FormModal { align: center middle; }
    FormModal #form-box { width: 84; height: auto; border: thick $accent; padding: 1 2;
        background: $surface; }
    FormModal #form-grid { grid-size: 2; grid-columns: 20 1fr; height: auto; grid-rows: 3; }
    FormModal .form-label { padding: 1 0; }
    FormModal #form-error { color: $error; text-style: bold; height: auto; }
    FormModal #form-hint { color: $text-muted; height: auto; }
    """

    def __init__(
        self,
        title: str,
        fields: Sequence[Field],
        submit: Callable[[dict[str, str]], T],
        *,
        hint: str = "",
        scan_field: str | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.fields = tuple(fields)
        self.submit = submit
        self.hint = hint
        self.scan_field = scan_field

    def compose(self) -> ComposeResult:
        with Vertical(id="form-box"):
            yield Static(self.title_text, id="form-title")
            with Grid(id="form-grid"):
                for f in self.fields:
                    yield Label(f.label, classes="form-label")
                    yield Input(value=f.value, placeholder=f.placeholder, id=f"f-{f.key}")
            yield Static("", id="form-error")
            yield Static(
                self.hint + "\nEnter on the last field or F2 confirms; Esc cancels.", id="form-hint"
            )
        yield Footer()

    def on_mount(self) -> None:
        first = next((f for f in self.fields if not f.value), self.fields[0])
        self.query_one(f"#f-{first.key}", Input).focus()

    def values(self) -> dict[str, str]:
        return {f.key: self.query_one(f"#f-{f.key}", Input).value for f in self.fields}

    def accept_scan(self, scan: ScanIntent) -> None:
        target = self.focused if isinstance(self.focused, Input) else None
        if self.scan_field is not None and (target is None or target.value):
            target = self.query_one(f"#f-{self.scan_field}", Input)
        if target is None:
            return
        target.value = scan.text
        inputs = list(self.query(Input))
        index = inputs.index(target)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
        else:
            self.action_submit()

    def action_submit(self) -> None:
        try:
            result = self.submit(self.values())
        except (DomainError, StoreError) as exc:
            self.app.bell()
            self.query_one("#form-error", Static).update(_explain(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HandoverModal(ModalScreen[str | None]):
    """Hand an order to the customer: scan their pickup QR or type the short code; the order is
    found and checked on this till alone (offline too), shown, and handed over on Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("f2", "confirm", "Hand over"),
    ]
    DEFAULT_CSS = """
    HandoverModal { align: center middle; }
    HandoverModal #handover-box { width: 84; height: auto; border: thick $success; padding: 1 2;
        background: $surface; }
    HandoverModal #handover-order { height: auto; margin: 1 0; }
    HandoverModal #handover-error { color: $error; text-style: bold; height: auto; }
    """

    def __init__(self, service: OrderService, code: str = "", order_id: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.code = code
        self.order_id = order_id
        self.found: StoredOrder | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="handover-box"):
            yield Static(
                "Hand over an online order: scan the customer's pickup QR or type the code"
            )
            yield Input(placeholder="6-digit pickup code", id="handover-code", value=self.code)
            yield Static("", id="handover-order")
            yield Static("", id="handover-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#handover-code", Input).focus()
        if self.code:
            self.look_up(self.code, self.order_id)

    def accept_scan(self, scan: ScanIntent) -> None:
        if scan.kind == "pickup":
            code = scan.value or ""
            self.query_one("#handover-code", Input).value = code
            self.look_up(code, getattr(scan.event, "order_id", None))
        else:
            self.look_up(scan.text, None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.found is not None and _code_of(event.value)[1] in (self.code, ""):
            self.action_confirm()
            return
        self.look_up(event.value, None)

    def look_up(self, text: str, order_id: str | None) -> None:
        qr_order, text = _code_of(text)
        order_id = qr_order or order_id
        self.found = None
        shown = self.query_one("#handover-order", Static)
        error = self.query_one("#handover-error", Static)
        try:
            order = self.service.find_pickup(text, order_id)
        except (DomainError, StoreError) as exc:
            self.app.bell()
            shown.update("")
            error.update(_explain(exc))
            return
        self.found, self.code = order, text
        error.update("")
        lines = "\n".join(
            f"  {ln.name} x{ln.picked}"
            + (f" (instead of {ln.sku})" if ln.substitute_sku else "")
            + (f"  (ordered {ln.qty})" if ln.picked != ln.qty else "")
            for ln in order.lines
            if ln.picked
        )
        shown.update(
            f"Order {order.order_id} for {order.customer.get('name', '')} "
            f"({order.customer.get('phone', '')})\n{lines}\n\nGive these to the customer, then "
            "press Enter (or F2) to record the handover."
        )

    def action_confirm(self) -> None:
        if self.found is None:
            self.look_up(self.query_one("#handover-code", Input).value, self.order_id)
            if self.found is None:
                return
        order_id = self.found.order_id
        try:
            self.service.hand_over(order_id, self.code)
        except (DomainError, StoreError) as exc:
            self.app.bell()
            self.query_one("#handover-error", Static).update(_explain(exc))
            return
        self.app.notify(f"Order {order_id} handed over. Stock moved.", title="Handed over")
        self.dismiss(order_id)

    def action_cancel(self) -> None:
        self.dismiss(None)


__all__ = [
    "FormModal",
    "HandoverModal",
    "OrdersScreen",
    "PickScreen",
    "RejectModal",
    "ShortPickModal",
    "open_endless_aisle",
    "open_handover",
    "open_orders",
    "open_pickup_code",
    "order_service",
    "refresh_orders",
    "start_wakeups",
    "stop_wakeups",
]
