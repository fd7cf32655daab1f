"""The camera worker inside a running Textual app: scans and status arrive as messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual.app import App, ComposeResult
from textual.widgets import Static

from pos.ui.camera import start_camera, stop_camera
from pos.ui.messages import CameraStatusChanged, ScanReceived
from tests.scanner.conftest import linear_image, on_canvas, qr_image, write_video


class CameraApp(App[None]):
    """The smallest app that listens like the sale screen does."""

    def __init__(self) -> None:
        super().__init__()
        self.scans: list[ScanReceived] = []
        self.states: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("till", id="status")

    def on_scan_received(self, message: ScanReceived) -> None:
        self.scans.append(message)
        self.query_one("#status", Static).update(f"scanned {message.text}")

    def on_camera_status_changed(self, message: CameraStatusChanged) -> None:
        self.states.append(message.status.state)


async def test_camera_worker_posts_scans_to_a_running_app(tmp_path: Path) -> None:
    blank = np.full((480, 640, 3), 215, np.uint8)
    video = write_video(
        tmp_path / "camera.avi",
        [blank] * 2
        + [on_canvas([qr_image("GUIDE:G0042")])] * 4
        + [blank] * 6
        + [on_canvas([linear_image("ean13", "690123456789")])] * 4
        + [blank] * 2,
    )
    app = CameraApp()
    async with app.run_test(size=(80, 20)) as pilot:
        handle = start_camera(app, str(video))
        await handle.worker.wait()
        await pilot.pause()
        assert [(m.text, m.source) for m in app.scans] == [
            ("GUIDE:G0042", "camera"),
            ("6901234567892", "camera"),
        ]
        assert app.scans[0].scan.kind == "guide"
        assert app.scans[1].scan.gtin == "06901234567892"
        assert "reading" in app.states
        assert app.states[-1] == "off"
        assert str(app.query_one("#status", Static).render()) == "scanned 6901234567892"
        assert handle.source._capture is None  # the camera was released


async def test_a_camera_that_cannot_be_opened_is_reported_lost_not_a_crash(
    tmp_path: Path,
) -> None:
    app = CameraApp()
    async with app.run_test(size=(80, 20)) as pilot:
        handle = start_camera(app, str(tmp_path / "nope.avi"), live=True, backoff=(0.01,))
        for _ in range(200):  # wait for the condition, not for a fixed time
            if "lost" in app.states:
                break
            await pilot.pause(0.01)
        assert "lost" in app.states
        stop_camera(app)
        await handle.worker.wait()
        await pilot.pause()
        assert app.states[-1] == "off"
        assert app.scans == []
        assert app.is_running
