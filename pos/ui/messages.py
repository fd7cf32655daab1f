"""Messages that reach the screens from workers (camera, sync) and from the wedge scanner.

Workers only post these; they never touch widgets or the database."""

from __future__ import annotations

from dataclasses import dataclass
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
