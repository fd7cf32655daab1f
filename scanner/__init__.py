"""Scan sources (camera, video, images, wedge text) turned into validated, parsed scan events.

The API the till builds on:

- `parse_text(text, symbology=None, source="wedge", at=None) -> ScanEvent`: validation and
  meaning of any scanned text (wedge scanners and typed codes go through it too); raises
  `ScanRejected` for a code the till must not take.
- `Decoder`: ZBar (pyzbar) on grayscale OpenCV frames with a voting pre-processing cascade.
- `CameraSource` (camera index, device path, video file, image sequence), `ImageFileSource`.
- `ScanPipeline(source)`: iterate it for `ScanEvent`s; rejected codes are counted, not yielded.
- `Debouncer`: one label held in view is one scan; 1D codes need two frames in agreement.
"""

from scanner.debounce import Debouncer
from scanner.decode import Decoder, Reading
from scanner.errors import DecoderUnavailable, ScannerError, ScanRejected, SourceError
from scanner.events import ScanEvent
from scanner.parse import DEFAULT_LAYOUTS, MeasureLayout, ParseSettings, parse_text
from scanner.pipeline import ScanPipeline
from scanner.sources import (
    CameraSource,
    Frame,
    FrameSource,
    ImageFileSource,
    SourceStatus,
    parse_spec,
)

__all__ = [
    "DEFAULT_LAYOUTS",
    "CameraSource",
    "Debouncer",
    "Decoder",
    "DecoderUnavailable",
    "Frame",
    "FrameSource",
    "ImageFileSource",
    "MeasureLayout",
    "ParseSettings",
    "Reading",
    "ScanEvent",
    "ScanPipeline",
    "ScanRejected",
    "ScannerError",
    "SourceError",
    "SourceStatus",
    "parse_spec",
    "parse_text",
]
