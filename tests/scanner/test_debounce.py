"""One label held in front of the camera rings up once; a misread never rings up."""

from __future__ import annotations

from scanner import Debouncer

EAN = ("EAN-13", "4007817327098")
QR = ("QR Code", "GUIDE:G0042")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def frames(debouncer: Debouncer, clock: FakeClock, sightings, step: float = 0.04):
    counted = []
    for seen in sightings:
        counted.extend(debouncer.feed(seen))
        clock.advance(step)
    return counted


def test_a_code_in_consecutive_frames_counts_once() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock, repeat_after=None)
    assert frames(d, clock, [[QR]] * 50) == [QR]


def test_a_1d_code_needs_two_frames_in_agreement() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock)
    assert d.feed([EAN]) == []  # one frame could be a misread
    clock.advance(0.04)
    assert d.feed([EAN]) == [EAN]


def test_a_lone_misread_never_counts() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock)
    misread = ("EAN-13", "9074932437075")
    assert frames(d, clock, [[EAN], [misread], [EAN], [EAN]]) == [EAN]


def test_a_qr_code_counts_on_its_first_frame() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock)
    assert d.feed([QR]) == [QR]


def test_rescanned_after_it_left_the_view() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock, gone_after=0.5, repeat_after=None)
    first = frames(d, clock, [[EAN]] * 5)
    frames(d, clock, [[]] * 20)  # 0.8 s without it: it left the view
    second = frames(d, clock, [[EAN]] * 5)
    assert first + second == [EAN, EAN]


def test_a_missed_frame_is_not_leaving_the_view() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock, gone_after=0.5, repeat_after=None)
    counted = frames(d, clock, [[EAN], [EAN], [], [], [EAN], [EAN], [], [EAN]])
    assert counted == [EAN]


def test_held_in_view_counts_again_after_the_configured_time() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock, repeat_after=2.0)
    counted = frames(d, clock, [[QR]] * 60, step=0.05)  # 3 s in view
    assert counted == [QR, QR]


def test_two_codes_in_one_frame_each_count_once() -> None:
    clock = FakeClock()
    d = Debouncer(clock=clock, repeat_after=None)
    assert frames(d, clock, [[EAN, QR], [EAN, QR], [QR, EAN]]) == [QR, EAN]
