"""Messages that reach the screens from workers (camera, sync) and from the wedge scanner.

Workers only post these; they never touch widgets or the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from textual.message import Message


class ScanReceived(Message):
    """A code was read: from the wedge scanner, typed by hand, or seen by the camera.

    `scan` is the scanner's parsed event when there is one (camera/wedge through `scanner`);
    `text` is always the raw code."""

    def __init__(
        self, text: str, source: Literal["wedge", "keyboard", "camera"], scan: Any = None
    ) -> None:
        super().__init__()
        self.text = text
        self.source = source
        self.scan = scan


@dataclass(frozen=True)
class CameraState:
    state: Literal["off", "reading", "lost"]
    fps: float = 0.0
    detail: str = ""


class CameraStatusChanged(Message):
    def __init__(self, status: CameraState) -> None:
        super().__init__()
        self.status = status


@dataclass(frozen=True)
class SyncState:
    """What the till knows about its link to HQ, as the sync engine last reported it.

    `online` is False until the sync engine says otherwise; ages and skew are None when unknown."""

    online: bool = False
    pending: int = 0  # outbox events not yet acknowledged by HQ
    oldest_pending_age: timedelta | None = None
    last_sync: datetime | None = None  # timezone-aware
    clock_skew: timedelta | None = None  # device clock minus HQ clock


class SyncStatusChanged(Message):
    """The sync engine's view changed (posted by its worker; the status bar shows it)."""

    def __init__(self, status: SyncState) -> None:
        super().__init__()
        self.status = status


class SaleCompleted(Message):
    """A sale was committed to the store's journal (the receipt is on screen). `receipt` is the
    services' SaleReceipt. Anyone who wants to react (push now, refresh counts) listens here."""

    def __init__(self, receipt: Any) -> None:
        super().__init__()
        self.receipt = receipt
