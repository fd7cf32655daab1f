"""The camera as a scanner: a thread worker that reads frames, decodes and debounces them, and
posts what it found to the app.

The worker only posts messages: `ScanReceived(text, "camera", scan)` for each accepted code
(the same path a wedge scan takes) and `CameraStatusChanged(CameraState(...))` for off /
reading at N fps / lost. It never touches widgets or the database, and it releases the camera
in `finally` whatever happens. A camera that disappears is retried with backoff by the source
and shown as lost; it never closes the till.

Wiring (the sale screen's side):

    handle = start_camera(app, "0")        # camera index, /dev/video2, or a video file
    ...
    handle.stop()                          # or stop_camera(app)

The camera choice is a plain spec string so it can live in the store's config table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual.app import App
from textual.message_pump import MessagePump
from textual.worker import Worker

from pos.ui.messages import CameraState, CameraStatusChanged, ScanReceived
from scanner import CameraSource, Debouncer, Decoder, ScannerError, ScanPipeline, SourceStatus
from scanner.parse import DEFAULT_SETTINGS, ParseSettings

WORKER_GROUP = "camera"


@dataclass
class CameraHandle:
    """A running camera worker. `stop()` asks it to finish; the camera is released by the
    worker itself as it leaves."""

    spec: str
    source: CameraSource
    worker: Worker[None]
    pipeline: ScanPipeline
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stopped.set()
        self.source.stop()

    @property
    def rejected(self) -> int:
        """Codes seen but refused (bad check digit...): counted, never posted."""
        return self.pipeline.rejected


def _state(status: SourceStatus) -> CameraState:
    return CameraState(status.state, status.fps, status.detail)


def start_camera(
    app: App[Any],
    spec: str | int,
    *,
    target: MessagePump | None = None,
    settings: ParseSettings = DEFAULT_SETTINGS,
    decoder_factory: Callable[[], Decoder] = lambda: Decoder(lone_1d=False),
    debouncer: Debouncer | None = None,
    live: bool | None = None,
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
) -> CameraHandle:
    """Start reading `spec` (camera index, device path or video file) in a thread worker.

    Messages go to `target` (default: the app). Any camera already started for this app is
    replaced (the worker group is exclusive)."""
    stop_camera(app)
    post = (target or app).post_message  # post_message is thread-safe

    def report(status: SourceStatus) -> None:
        post(CameraStatusChanged(_state(status)))

    source = CameraSource(spec, live=live, on_status=report, backoff=backoff)
    pipeline = ScanPipeline(
        source,
        decoder=None,  # built inside the worker thread: a ZBar scanner belongs to one thread
        debouncer=debouncer,
        settings=settings,
        on_status=report,
    )

    def run() -> None:
        decoder: Decoder | None = None
        try:
            decoder = decoder_factory()
            pipeline.decoder = decoder
            for event in pipeline:
                post(ScanReceived(event.text, "camera", event))
        except ScannerError as exc:
            report(SourceStatus("lost", detail=str(exc)))
        except Exception as exc:  # the till stays up whatever the camera stack does
            report(SourceStatus("lost", detail=f"camera stopped: {exc}"))
        finally:
            source.stop()
            source.close()
            if decoder is not None:
                decoder.close()

    report(SourceStatus("reading", detail=f"starting {source.describe()}"))
    worker: Worker[None] = app.run_worker(
        run,
        name=f"camera {spec}",
        group=WORKER_GROUP,
        exclusive=True,
        thread=True,
        exit_on_error=False,
    )
    handle = CameraHandle(str(spec), source, worker, pipeline)
    _handles[id(app)] = handle
    return handle


_handles: dict[int, CameraHandle] = {}


def stop_camera(app: App[Any]) -> None:
    """Stop the app's camera worker, if one runs."""
    handle = _handles.pop(id(app), None)
    if handle is not None:
        handle.stop()
