"""Telling a wedge scanner from a person typing.

A wedge scanner is a keyboard to the terminal: it "types" the code and Enter within a few
milliseconds. A person needs far longer between keys. So printable keys are held back for a few
milliseconds; if they keep coming that fast and end with Enter, the run is one scan, wherever the
focus is, and none of its keys reach the focused widget (nor cost it a redraw per key). Anything
slower is released in order, a few milliseconds late, to whatever the keys were meant for.

This module knows nothing about Textual: it buffers opaque items with timestamps, so its rules are
tested with exact times and the app decides what an item is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_GAP_S = 0.030  # a scanner sends a key every 1-10 ms; people need 50 ms and more
DEFAULT_MIN_CHARS = 4  # shorter bursts (a bounced key, auto-repeat) are typing, not a scan


@dataclass(frozen=True, slots=True)
class Scan:
    """A burst that ended with Enter: one code, and when its first key arrived."""

    text: str
    started_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Release(Generic[T]):
    """Held keys that turned out to be typing: deliver them, in this order."""

    items: tuple[T, ...]


class WedgeBuffer(Generic[T]):
    """Holds a run of printable keys while they arrive at scanner speed.

    Times are seconds on one monotonic clock. Every held key arrived within `max_gap` of the one
    before it, so the held run is always a candidate burst."""

    def __init__(
        self, max_gap: float = DEFAULT_MAX_GAP_S, min_chars: int = DEFAULT_MIN_CHARS
    ) -> None:
        if max_gap <= 0:
            raise ValueError("max_gap must be positive; switch the detector off instead")
        self.max_gap = max_gap
        self.min_chars = max(1, min_chars)
        self._held: list[tuple[str, T]] = []
        self._first: float = 0.0
        self._last: float | None = None

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def last_time(self) -> float | None:
        return self._last if self._held else None

    def push(self, char: str, at: float, item: T) -> tuple[T, ...]:
        """A printable key arrived. Returns earlier held keys that must be released first (the gap
        before this one was too long for them to be part of a scan)."""
        released: tuple[T, ...] = ()
        if self._held and self._last is not None and at - self._last > self.max_gap:
            released = self._take()
        if not self._held:
            self._first = at
        self._held.append((char, item))
        self._last = at
        return released

    def enter(self, at: float) -> Scan | Release[T]:
        """Enter arrived. A fast enough run of enough keys is a scan; otherwise the held keys are
        released (and the caller delivers the Enter after them)."""
        if (
            len(self._held) >= self.min_chars
            and self._last is not None
            and at - self._last <= self.max_gap
        ):
            text = "".join(char for char, _ in self._held)
            self._held.clear()
            self._last = None
            return Scan(text, self._first)
        return Release(self._take())

    def expire(self, now: float) -> tuple[T, ...]:
        """Called by a timer: keys that waited longer than the gap are typing; release them."""
        if self._held and self._last is not None and now - self._last > self.max_gap:
            return self._take()
        return ()

    def flush(self) -> tuple[T, ...]:
        """Release everything held (another kind of key arrived)."""
        return self._take()

    def _take(self) -> tuple[T, ...]:
        items = tuple(item for _, item in self._held)
        self._held.clear()
        self._last = None
        return items


def looks_scanned(
    key_times: Sequence[float],
    enter_at: float,
    max_gap: float = DEFAULT_MAX_GAP_S,
    min_chars: int = DEFAULT_MIN_CHARS,
) -> bool:
    """Did these keys (and the Enter after them) arrive at scanner speed? Used to label a code
    typed into the scan field, where every key is delivered as it comes."""
    if len(key_times) < max(1, min_chars):
        return False
    stamps = [*key_times, enter_at]
    return all(later - earlier <= max_gap for earlier, later in pairwise(stamps))
