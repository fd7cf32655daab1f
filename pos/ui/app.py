"""The till application: one factory builds it from its settings.

The app owns the open store and the sale service, routes every scan (wedge burst, typed, camera)
to the screen in front, and feeds the status bar. The wedge detector sits in front of Textual's
own key handling, so a scanner's burst is one scan wherever the focus is."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.timer import Timer

from pos.store import outbox
from pos.store.errors import StoreError
from pos.ui.messages import (
    CameraState,
    CameraStatusChanged,
    SaleCompleted,
    ScanReceived,
    SyncStatusChanged,
)
from pos.ui.sale import SaleScreen
from pos.ui.scan_routing import ScanIntent, interpret, warm_up
from pos.ui.wedge import DEFAULT_MIN_CHARS, Scan, WedgeBuffer
from pos.ui.widgets import ScanField

if TYPE_CHECKING:
    from pos.services.sale import SaleService
    from pos.store.db import Store
    from pos.ui.sync_link import SyncLink

DEFAULT_GAP_MS = 30.0
HICCUP_WINDOW_S = 0.5  # keys typed into the scan field this shortly before a burst belong to it
ENTER_KEYS = frozenset({"enter", "ctrl+m", "ctrl+j"})
READY_MARKER = b"pos: ready to scan\n"


@dataclass(frozen=True)
class PosSettings:
    """Everything the till is started with. `pos run`, `pos demo`, tests and benchmarks all
    build the app from one of these."""

    db_path: Path
    create: bool = False  # open only an existing store unless asked to create one
    currency: str = "CNY"
    # keys this close together, ending with Enter, are one scan; 0 switches detection off
    wedge_gap_ms: float = DEFAULT_GAP_MS
    wedge_min_chars: int = DEFAULT_MIN_CHARS
    outbox_refresh_s: float = 5.0
    camera: str | None = None  # camera spec (index, device, video file); None: the store's setting
    welcome: str | None = None  # shown once the till is ready (the demo's codes to try)
    exit_when_ready: bool = False  # benchmarks: write READY_MARKER to stdout and quit when ready
    clock: Callable[[], datetime] | None = None  # the services' clock; tests pass a fixed one
    sync_interval_s: float = 30.0  # the sync engine's timer (it also runs after each sale)
    sync_transport: Callable[[], Any] | None = None  # tests: the HQ app in-process


class ScanTarget(Protocol):
    def accept_scan(self, scan: ScanIntent) -> None: ...


class PosApp(App[int]):
    CSS_PATH = "pos.tcss"
    TITLE = "Store POS"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Close till", show=False, priority=True),
        Binding("f9", "toggle_camera", "Camera", show=False),
        Binding("f6", "open_orders", "Online orders", show=False),
        Binding("f10", "open_sync", "Sync", show=False),
        Binding("ctrl+s", "sync_now", "Sync now", show=False),
    ]

    def __init__(self, settings: PosSettings, store: Store, service: SaleService) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.service = service
        self.wedge: WedgeBuffer[events.Key] | None = (
            WedgeBuffer(settings.wedge_gap_ms / 1000, settings.wedge_min_chars)
            if settings.wedge_gap_ms > 0
            else None
        )
        self._wedge_timer: Timer | None = None
        self._field_head: list[str] = []  # keys released into the scan field as typing
        self._field_head_at = 0.0
        self.sale_screen: SaleScreen | None = None
        self.camera_on = False
        self.settled = False  # start-up work done (scanner loaded, heap frozen)
        self.sync_link: SyncLink | None = None

    # -- start and stop -------------------------------------------------------------------------
    def on_mount(self) -> None:
        identity = self.store.identity
        self.sale_screen = SaleScreen(
            self.service,
            store_id=identity.store_id,
            device_id=identity.device_id,
            timezone=identity.timezone,
            currency=self.settings.currency,
            wedge_gap_s=(self.settings.wedge_gap_ms or DEFAULT_GAP_MS) / 1000,
            wedge_min_chars=self.settings.wedge_min_chars,
        )
        self.push_screen(self.sale_screen)
        if not self.settings.exit_when_ready:
            from pos.ui.sync_link import start_sync  # its heavy imports run in its thread

            self.sync_link = start_sync(self)
        self.set_interval(self.settings.outbox_refresh_s, self.refresh_outbox)
        self.call_after_refresh(self._announce_ready)

    def _announce_ready(self) -> None:
        """The scan field is on screen and focused: a scan now lands in the cart."""
        self.refresh_outbox()
        if not self.settings.exit_when_ready:
            # the scanner's parser loads in the background while the cashier looks at the
            # screen; then the start-up heap is set aside from the garbage collector
            self.run_worker(self._settle, thread=True, name="settle", exit_on_error=False)
            from pos.ui.orders_screen import start_wakeups

            start_wakeups(self)  # HQ's wake-ups: a new online order reaches the inbox at once
        if self.settings.welcome:
            self.notify(self.settings.welcome, title="Welcome", timeout=15)
        if self.settings.camera and not self.settings.exit_when_ready:
            self.action_toggle_camera()
        if self.settings.exit_when_ready:
            os.write(1, READY_MARKER)  # stdout: Textual draws on stderr
            self.exit(0)

    def _settle(self) -> None:
        warm_up()
        if self.is_running:
            with contextlib.suppress(RuntimeError):  # the till closed meanwhile
                self.call_from_thread(self._settled)

    def _settled(self) -> None:
        freeze_startup_heap()
        self.settled = True

    def on_unmount(self) -> None:
        from pos.ui.orders_screen import stop_wakeups

        stop_wakeups(self)
        if self.sync_link is not None:
            self.sync_link.stop()
        if self.camera_on:
            from pos.ui.camera import stop_camera

            stop_camera(self)
        self.store.close()
        gc.unfreeze()  # hand the heap back to the collector (matters when apps run in turn)

    def camera_spec(self) -> str | None:
        if self.settings.camera:
            return self.settings.camera
        try:
            return self.store.get_config("camera")
        except StoreError:
            return None

    def action_toggle_camera(self) -> None:
        """Start or stop reading codes with the camera (loaded only when first used: it pulls
        in OpenCV and ZBar, which the till does not need to start)."""
        from pos.ui.camera import start_camera, stop_camera

        if self.camera_on:
            stop_camera(self)
            self.camera_on = False
            self.post_message(CameraStatusChanged(CameraState("off")))
            return
        spec = self.camera_spec()
        if not spec:
            self.notify(
                "No camera is set up for this till. Start it with --camera 0 (or a device).",
                severity="warning",
            )
            return
        start_camera(self, spec)
        self.camera_on = True

    def action_quit(self) -> None:  # type: ignore[override]
        screen = self.sale_screen
        if screen is not None and not screen.cart.is_empty:
            self.notify(
                "A sale is open. Take the payment (F2) or cancel it (Esc) before closing the till.",
                severity="warning",
            )
            return
        self.exit(0)

    # -- the wedge scanner ----------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        if self.wedge is not None and isinstance(event, events.Key) and not event.is_forwarded:
            await self._wedge_key(event, self.wedge)
            return
        await super().on_event(event)

    async def _wedge_key(self, event: events.Key, wedge: WedgeBuffer[events.Key]) -> None:
        if event.is_printable and event.character is not None and len(event.character) == 1:
            await self._deliver(wedge.push(event.character, event.time, event))
            self._arm_wedge_timer()
            return
        if event.key in ENTER_KEYS and wedge.holding:
            result = wedge.enter(event.time)
            if isinstance(result, Scan):
                self._burst_scanned(result)
                return
            await self._deliver(result.items)
        else:
            await self._deliver(wedge.flush())
        self._field_head = []  # Enter or an editing key: whatever was typed is done with
        await super().on_event(event)

    async def _deliver(self, keys: tuple[events.Key, ...]) -> None:
        """Hand held keys to Textual's normal key handling, in the order they were typed."""
        for key in keys:
            if isinstance(self.focused, ScanField) and key.character:
                self._field_head.append(key.character)
                self._field_head_at = key.time
            await super().on_event(key)

    def _arm_wedge_timer(self) -> None:
        if self._wedge_timer is None and self.wedge is not None:
            self._wedge_timer = self.set_timer(self.wedge.max_gap * 1.5, self._wedge_expired)

    async def _wedge_expired(self) -> None:
        self._wedge_timer = None
        wedge = self.wedge
        if wedge is None:
            return
        # event times are Textual's monotonic clock, time.monotonic on the platforms we run on
        await self._deliver(wedge.expire(time.monotonic()))
        if wedge.holding:
            self._arm_wedge_timer()

    def _burst_scanned(self, scan: Scan) -> None:
        text = scan.text
        field = self.focused
        if isinstance(field, ScanField):
            # A scanner that paused mid-code (a Bluetooth hiccup, a busy machine) had its first
            # keys released into the field as typing: they are the start of this code.
            head_age = scan.started_at - self._field_head_at
            if self._field_head and head_age <= HICCUP_WINDOW_S:
                text = "".join(self._field_head) + text
            field.call_later(field.clear)  # after any keys it is still taking in
        self._field_head = []
        self.post_message(ScanReceived(text, "wedge"))

    # -- every scan, whatever its source, is routed here -----------------------------------------
    def on_scan_received(self, message: ScanReceived) -> None:
        message.stop()
        scan = interpret(message.text, message.source, message.scan)
        target = self.screen
        accept = getattr(target, "accept_scan", None)
        if accept is None:
            self.notify(
                "Finish or close this window before scanning. The code was not used.",
                severity="warning",
            )
            return
        accept(scan)

    # -- status bar feeds -----------------------------------------------------------------------
    def on_camera_status_changed(self, message: CameraStatusChanged) -> None:
        if self.sale_screen is not None:
            self.sale_screen.status_update(camera=message.status)

    def on_sync_status_changed(self, message: SyncStatusChanged) -> None:
        # the sync worker may report before the sale screen is mounted or after it is gone
        if self.sale_screen is not None and self.sale_screen.is_mounted:
            self.sale_screen.status_update(sync=message.status)
        self.refresh_outbox()

    def on_sale_completed(self, message: SaleCompleted) -> None:
        self.refresh_outbox()
        self.action_sync_now()  # tell HQ promptly; the engine runs in its own thread

    def action_sync_now(self) -> None:
        if self.sync_link is not None:
            self.sync_link.sync_now()

    def action_open_sync(self) -> None:
        from pos.ui.sync_screen import SyncScreen

        if self.sync_link is not None and not isinstance(self.screen, SyncScreen):
            self.push_screen(SyncScreen(self.sync_link))

    def action_open_orders(self) -> None:
        from pos.ui.orders_screen import open_orders

        open_orders(self)

    def refresh_outbox(self) -> None:
        if self.sale_screen is None or not self.sale_screen.is_mounted:
            return
        try:
            pending = outbox.depth(self.store.db)
        except StoreError:
            pending = None  # shown as "outbox ?"; the sale path reports store failures itself
        self.sale_screen.status_update(outbox_pending=pending)
        from pos.ui.orders_screen import refresh_orders

        refresh_orders(self)  # the badge of online orders to answer, a bell for a new one


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, styles, widgets) out of the garbage
    collector's sight. A full collection otherwise walks that whole heap every few dozen scans,
    a 60-100 ms stall in the middle of a scan; now it walks only what was made since."""
    gc.collect()
    gc.freeze()


def default_clock() -> datetime:
    return datetime.now(UTC)


def build_app(settings: PosSettings, *, store: Store | None = None) -> PosApp:
    """Open the store (unless given one) and build the till on it.

    Raises the store's errors (StoreCorruptError, StoreLockedError, ...) before any screen is
    drawn, so the command line can report them plainly."""
    from pos.services.sale import SaleService
    from pos.store.db import open_store

    own = store is None
    if store is None:
        store = open_store(settings.db_path, create=settings.create)
    try:
        store.identity  # noqa: B018 - a store without an identity is refused here, not on screen
        service = SaleService(store, clock=settings.clock or default_clock)
        return PosApp(settings, store, service)
    except BaseException:
        if own:
            store.close()
        raise
