"""One code held in front of the camera is one scan.

A camera sees the same label in frame after frame; the till must ring it once. Rules, per code
(symbology + text):

- It counts once while it stays in view. It has *left the view* when no frame has shown it for
  `gone_after` seconds (a frame or two where the decoder misses it does not count as leaving).
- It can be scanned again after it left the view, or, while it stays in view, once
  `repeat_after` seconds have passed since it was counted (None: never while in view).
- A 1D code is counted only once `confirm_1d` frames in a row showed the same text (1D codes
  have a weak check digit; a misread rarely repeats). A QR code is error-corrected: one frame.

The clock is injected (`clock()` -> seconds, monotonic) so tests run on a fake one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

TWO_D = frozenset({"QR Code"})


@dataclass
class _Track:
    streak: int  # frames in a row (within the gap tolerance) that showed it
    last_seen: float
    counted_at: float | None


class Debouncer:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        gone_after: float = 0.5,
        repeat_after: float | None = 3.0,
        confirm_1d: int = 2,
        confirm_2d: int = 1,
    ) -> None:
        if confirm_1d < 1 or confirm_2d < 1:
            raise ValueError("confirmations must be at least 1")
        self._clock = clock
        self.gone_after = gone_after
        self.repeat_after = repeat_after
        self.confirm_1d = confirm_1d
        self.confirm_2d = confirm_2d
        self._tracks: dict[tuple[str | None, str], _Track] = {}

    def feed(self, seen: Iterable[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
        """One frame's codes in; the codes to count now out (in the order given)."""
        now = self._clock()
        out: list[tuple[str | None, str]] = []
        for key in dict.fromkeys(seen):  # a code twice in one frame is still one sighting
            track = self._tracks.get(key)
            if track is None or now - track.last_seen > self.gone_after:
                track = self._tracks[key] = _Track(streak=0, last_seen=now, counted_at=None)
            track.streak += 1
            track.last_seen = now
            needed = self.confirm_2d if key[0] in TWO_D else self.confirm_1d
            if track.streak < needed:
                continue
            if track.counted_at is None or (
                self.repeat_after is not None and now - track.counted_at >= self.repeat_after
            ):
                track.counted_at = now
                out.append(key)
        self._forget(now)
        return out

    def _forget(self, now: float) -> None:
        gone = [k for k, t in self._tracks.items() if now - t.last_seen > self.gone_after]
        for key in gone:
            del self._tracks[key]

    def reset(self) -> None:
        self._tracks.clear()
