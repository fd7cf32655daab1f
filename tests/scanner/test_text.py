"""Payload bytes to text: the cases where ZBar's own conversion gives a wrong text."""

from __future__ import annotations

import pytest

from scanner.text import code39_full_ascii, decode_qr_bytes, escape_non_graphical


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("E+X+T+E+N+D+E+D /A%J/J/C", "Extended !?*#"),
        ("A+A-1234", "Aa-1234"),
        ("ABC123", "ABC123"),
        ("$M$J", "\r\n"),
        ("A/B+", "A/B+"),  # not a valid Full ASCII sequence: kept as printed
        ("50%", "50%"),
    ],
)
def test_code39_full_ascii(raw: str, text: str) -> None:
    assert code39_full_ascii(raw) == text


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"http://x.org", "http://x.org"),
        ("MECARD:N:測試;;".encode(), "MECARD:N:測試;;"),
        ("[内側QRコード]".encode("shift_jis"), "[内側QRコード]"),
        ("*ﾃﾞｻﾞｲﾝQR*".encode("shift_jis"), "*ﾃﾞｻﾞｲﾝQR*"),
        ("Grüße aus Köln".encode("latin-1"), "Grüße aus Köln"),
        (b"\xef\xbb\xbfBOM", "BOM"),
    ],
)
def test_qr_bytes_in_the_encoding_they_fit(data: bytes, text: str) -> None:
    assert decode_qr_bytes(data) == text


def test_escape_non_graphical() -> None:
    assert escape_non_graphical("a\r\nb\x1dc\x7f\x85") == "a<CR><LF>b<GS>c<DEL><U+85>"


def test_code128_values_to_text_with_fnc4_shift_latch_and_fnc1() -> None:
    from scanner.code128 import values_text

    def check(start: int, data: list[int]) -> list[int]:
        total = start + sum(i * v for i, v in enumerate(data, start=1))
        return [start, *data, total % 103]

    # Code B: FNC4 then 'S' (51) -> chr(0x53 + 128) = 'Ó'; then plain 'a' (65).
    assert values_text(check(104, [100, 51, 65])) == ("Óa", False)
    # FNC4 FNC4 latches extended mode until the next double FNC4.
    assert values_text(check(104, [100, 100, 51, 51, 100, 100, 51])) == ("ÓÓS", False)
    # Code C pairs, FNC1 first (GS1), then FNC1 as a separator.
    assert values_text(check(105, [102, 1, 23, 102, 45])) == ("0123\x1d45", True)
