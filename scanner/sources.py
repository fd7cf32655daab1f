"""Where frames come from: a camera, a video file or image sequence, or still image files.

A camera, a video file and an image sequence (`shots/img_%03d.png`) all go through the same
`CameraSource` and `cv2.VideoCapture`, so tests that feed a video file exercise the camera code.
A *live* source (a camera index or a device path) that fails to open or stops delivering frames
is reported `lost` through the status callback and reopened with exponential backoff until it
comes back or the source is stopped; it never raises mid-shift. A file source ends at its last
frame and raises `SourceError` when it cannot be opened at all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from scanner.errors import SourceError

SourceKind = Literal["camera", "video", "image"]


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR or grayscale, as OpenCV gives it
    index: int
    name: str = ""  # the file a still image came from


@dataclass(frozen=True)
class SourceStatus:
    """What a source tells the till about itself: off, reading (at `fps`), or lost."""

    state: Literal["off", "reading", "lost"]
    fps: float = 0.0
    detail: str = ""


StatusCallback = Callable[[SourceStatus], None]


class FrameSource(Protocol):
    """Anything iterated for frames. `kind` says whether frames are video (debounced) or stills."""

    kind: SourceKind

    def __iter__(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...


def parse_spec(spec: str | int) -> int | str:
    """A camera setting as typed by staff: `0` -> camera index 0, anything else a path."""
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    if text.isdigit():
        return int(text)
    if not text:
        raise SourceError("no camera chosen")
    return text


class CameraSource:
    """Frames from `cv2.VideoCapture`: a camera (index or device path), a video file or an
    image sequence pattern.

    `live` (default: True for an index or a /dev path) turns on the retry-with-backoff
    behaviour of a camera; `sleep` and `clock` are injectable for tests."""

    def __init__(
        self,
        spec: str | int,
        *,
        live: bool | None = None,
        on_status: StatusCallback | None = None,
        backoff: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0),
        max_attempts: int | None = None,
        sleep: Callable[[float], None] | None = None,
        api_preference: int = cv2.CAP_ANY,
    ) -> None:
        self.spec = parse_spec(spec)
        self.live = (
            live
            if live is not None
            else isinstance(self.spec, int) or str(self.spec).startswith("/dev/")
        )
        self.kind: SourceKind = "camera" if self.live else "video"
        self.on_status = on_status
        self.backoff = tuple(backoff) or (1.0,)
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._sleep = sleep or (lambda seconds: self._stop.wait(seconds))
        self._api = api_preference
        self._capture: cv2.VideoCapture | None = None

    def describe(self) -> str:
        return f"camera {self.spec}" if isinstance(self.spec, int) else str(self.spec)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Release the device now (also done when iteration ends)."""
        self._release()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _status(self, status: SourceStatus) -> None:
        if self.on_status is not None:
            self.on_status(status)

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self.spec, self._api)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        try:
            while not self._stop.is_set():
                if self._capture is None:
                    self._capture = self._open()
                    if self._capture is None:
                        if not self.live:
                            raise SourceError(f"cannot open {self.describe()}")
                        failures += 1
                        if self._give_up(failures, "cannot open"):
                            return
                        continue
                ok, image = self._capture.read()
                if not ok or image is None:
                    self._release()
                    if not self.live:
                        return  # end of the video file
                    failures += 1
                    if self._give_up(failures, "stopped delivering frames"):
                        return
                    continue
                if failures:
                    failures = 0
                    self._status(SourceStatus("reading", detail=f"{self.describe()} is back"))
                yield Frame(image, index)
                index += 1
        finally:
            self._release()

    def _give_up(self, failures: int, what: str) -> bool:
        """Report the loss, wait the next backoff step; True when attempts are exhausted."""
        delay = self.backoff[min(failures - 1, len(self.backoff) - 1)]
        exhausted = self.max_attempts is not None and failures >= self.max_attempts
        detail = f"{self.describe()} {what}" + (
            "; giving up" if exhausted else f"; retrying in {delay:g} s"
        )
        self._status(SourceStatus("lost", detail=detail))
        if exhausted:
            return True
        self._sleep(delay)
        return self._stop.is_set()


class ImageFileSource:
    """Still images from files (any format OpenCV reads). Unreadable files raise SourceError
    unless `skip_unreadable`, in which case they are reported through `on_error`."""

    kind: SourceKind = "image"

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        skip_unreadable: bool = False,
        on_error: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.skip_unreadable = skip_unreadable
        self.on_error = on_error
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            image = read_image(path) if path.is_file() else None
            if image is None:
                reason = "no such file" if not path.exists() else "not an image OpenCV can read"
                if not self.skip_unreadable:
                    raise SourceError(f"{path}: {reason}")
                if self.on_error is not None:
                    self.on_error(path, reason)
                continue
            yield Frame(image, index, str(path))


def read_image(path: Path) -> np.ndarray | None:
    """An image file as OpenCV's BGR array (non-ASCII paths work too), or None."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


class FpsMeter:
    """Frames per second over a sliding window of recent frames."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = 30) -> None:
        self._clock = clock
        self._times: list[float] = []
        self._window = window

    def tick(self) -> float:
        self._times.append(self._clock())
        if len(self._times) > self._window:
            del self._times[0]
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0
