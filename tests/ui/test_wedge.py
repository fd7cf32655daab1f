"""The wedge rule with exact times: a fast run ending in Enter is a scan, typing is not."""

from __future__ import annotations

import pytest

from pos.ui.wedge import Release, Scan, WedgeBuffer, looks_scanned

MS = 0.001


def feed(buffer: WedgeBuffer[str], text: str, start: float, step_ms: float) -> list[str]:
    released: list[str] = []
    for i, char in enumerate(text):
        released += buffer.push(char, start + i * step_ms * MS, char)
    return released


def test_scanner_speed_run_ending_in_enter_is_one_scan() -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    assert feed(buffer, "6901234567892", 10.0, 3) == []  # nothing leaks while it looks like a scan
    result = buffer.enter(10.0 + 13 * 3 * MS)
    assert result == Scan("6901234567892", started_at=10.0)
    assert not buffer.holding


def test_keys_30ms_apart_still_count_but_31ms_do_not() -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    feed(buffer, "12345678", 0.0, 30)
    assert buffer.enter(7 * 30 * MS + 30 * MS) == Scan("12345678", started_at=0.0)

    slow: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    released = feed(slow, "12345678", 0.0, 31)
    # each key waited too long for the next: all but the last were handed on as typing
    assert released == list("1234567")
    assert slow.enter(7 * 31 * MS + 31 * MS) == Release(("8",))


def test_person_typing_is_released_in_order_by_the_timer() -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    assert buffer.push("1", 1.0, "1") == ()
    assert buffer.expire(1.0 + 10 * MS) == ()  # still within the gap: keep holding
    assert buffer.expire(1.0 + 40 * MS) == ("1",)
    assert not buffer.holding


@pytest.mark.parametrize("text", ["1", "12", "100"])
def test_short_fast_runs_are_typing_not_scans(text: str) -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    feed(buffer, text, 0.0, 1)
    assert buffer.enter(len(text) * MS) == Release(tuple(text))


def test_enter_long_after_the_burst_is_not_a_scan() -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    feed(buffer, "6901234567892", 0.0, 2)
    assert buffer.enter(0.5) == Release(tuple("6901234567892"))


def test_flush_hands_everything_back() -> None:
    buffer: WedgeBuffer[str] = WedgeBuffer(max_gap=30 * MS, min_chars=4)
    feed(buffer, "ab", 0.0, 1)
    assert buffer.flush() == ("a", "b")
    assert buffer.flush() == ()


def test_scan_field_timing_tells_a_scanner_from_a_person() -> None:
    burst = [i * 2 * MS for i in range(13)]
    assert looks_scanned(burst, 13 * 2 * MS, max_gap=30 * MS, min_chars=4)
    typed = [i * 120 * MS for i in range(13)]
    assert not looks_scanned(typed, 13 * 120 * MS, max_gap=30 * MS, min_chars=4)
    assert not looks_scanned(burst[:3], 3 * 2 * MS, max_gap=30 * MS, min_chars=4)
