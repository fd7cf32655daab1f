"""Source -> decoder -> validation -> debounce: the scans a till should act on.

Iterating a `ScanPipeline` yields `ScanEvent`s only. A code that fails validation (bad check
digit, damaged chain payload) is never yielded: it is counted in `rejected` and the last one is
kept in `last_rejection` so the UI can say "a code was refused" if it wants to. Video frames go
through `Decoder.decode_frame` and the `Debouncer`; still images through the full cascade, each
image on its own (no debounce).

Status (`on_status`): the source's own reports (lost / back) plus "reading at N fps", sent at
most once per `status_every` seconds, and "off" when the pipeline ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from scanner.debounce import Debouncer
from scanner.decode import Decoder, Reading
from scanner.errors import ScanRejected
from scanner.events import ScanEvent, Source
from scanner.parse import DEFAULT_SETTINGS, ParseSettings, parse_text
from scanner.sources import FpsMeter, Frame, FrameSource, SourceStatus, StatusCallback


class ScanPipeline:
    def __init__(
        self,
        source: FrameSource,
        *,
        decoder: Decoder | None = None,
        debouncer: Debouncer | None = None,
        settings: ParseSettings = DEFAULT_SETTINGS,
        on_status: StatusCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        status_every: float = 1.0,
    ) -> None:
        self.source = source
        self.decoder = decoder  # made on first use, in the thread that iterates
        self.debouncer = debouncer or Debouncer(clock=clock)
        self.settings = settings
        self.on_status = on_status
        self._clock = clock
        self._now = now
        self.status_every = status_every
        self.rejected = 0
        self.last_rejection: ScanRejected | None = None
        self.frames = 0
        self.fps = 0.0
        self.last_frame: Frame | None = None

    def _status(self, status: SourceStatus) -> None:
        if self.on_status is not None:
            self.on_status(status)

    def _decoder(self) -> Decoder:
        if self.decoder is None:
            self.decoder = Decoder(lone_1d=self.source.kind == "image")
        return self.decoder

    def readings(self, frame: Frame) -> list[Reading]:
        if self.source.kind == "image":
            return self._decoder().decode_image(frame.image)
        return self._decoder().decode_frame(frame.image)

    def _event(self, reading: Reading, source: Source) -> ScanEvent | None:
        try:
            return parse_text(
                reading.text,
                symbology=reading.symbology,
                source=source,
                at=self._now(),
                gs1=reading.gs1,
                settings=self.settings,
            )
        except ScanRejected as exc:
            self.rejected += 1
            self.last_rejection = exc
            return None

    def __iter__(self) -> Iterator[ScanEvent]:
        source_kind: Source = self.source.kind
        meter = FpsMeter(self._clock)
        last_status = -float("inf")
        try:
            for frame in self.source:
                self.frames += 1
                self.last_frame = frame
                readings = self.readings(frame)
                if source_kind == "image":
                    for reading in readings:
                        event = self._event(reading, source_kind)
                        if event is not None:
                            yield event
                    continue
                self.fps = meter.tick()
                now = self._clock()
                if now - last_status >= self.status_every:
                    last_status = now
                    self._status(SourceStatus("reading", fps=round(self.fps, 1)))
                by_key: dict[tuple[str | None, str], Reading] = {
                    (r.symbology, r.text): r for r in readings
                }
                for key in self.debouncer.feed(by_key):
                    # The second opinion on an EAN/UPC runs once per scan, not once per frame.
                    checked = self._decoder().second_opinion(frame.image, by_key[key])
                    if checked is None:
                        self.rejected += 1
                        continue
                    event = self._event(checked, source_kind)
                    if event is not None:
                        yield event
        finally:
            self._status(SourceStatus("off"))

    def stop(self) -> None:
        self.source.stop()
