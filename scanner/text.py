"""From a symbol's payload bytes to the text it stands for.

ZBar's own text conversion is wrong for two things a till meets: QR payloads in Shift_JIS (common
on Japanese goods and posters; QR has no encoding marker unless an ECI is used) and Code 39 "Full
ASCII", where lower case and punctuation are sent as two-character shift pairs (`+A` = `a`). So QR
bytes come here raw and the encoding is chosen from the bytes themselves; Code 39 shift pairs are
expanded when the whole text is a valid Full ASCII sequence."""

from __future__ import annotations

import re

__all__ = ["code39_full_ascii", "decode_qr_bytes", "escape_non_graphical"]


def _valid(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


_HALFWIDTH_KATAKANA = re.compile("[\uff61-\uff9f]{3,}")
_SJIS_DOUBLE_BYTE = re.compile("[\u3000-\u30ff\u4e00-\u9fff\uff01-\uff5e]")


def decode_qr_bytes(data: bytes) -> str:
    """The text of a QR payload given as bytes, in the encoding the bytes fit best.

    Order: plain ASCII; UTF-8 when the bytes are valid UTF-8 (multi-byte UTF-8 sequences almost
    never occur by chance); Shift_JIS when the bytes decode as Shift_JIS *and* produce Japanese
    (a double-byte character or a run of half-width katakana); otherwise ISO-8859-1, the QR
    standard's default, unless the bytes hold C1 control codes, which real Latin-1 text never
    does, in which case Shift_JIS is preferred again when it decodes at all."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.isascii():
        return data.decode("ascii")
    utf8 = _valid(data, "utf-8")
    if utf8 is not None:
        return utf8
    sjis = _valid(data, "cp932")
    if sjis is not None and (_SJIS_DOUBLE_BYTE.search(sjis) or _HALFWIDTH_KATAKANA.search(sjis)):
        return sjis
    has_c1 = any(0x80 <= b <= 0x9F for b in data)
    if has_c1 and sjis is not None:
        return sjis
    return data.decode("latin-1")


# Code 39 Full ASCII: shift character + letter -> ASCII character.
_FULL_ASCII: dict[str, str] = {}
for _i, _letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    _FULL_ASCII["$" + _letter] = chr(1 + _i)  # control characters SOH..SUB
    _FULL_ASCII["+" + _letter] = chr(ord("a") + _i)
for _letter, _char in zip("ABCDE", "\x1b\x1c\x1d\x1e\x1f", strict=True):
    _FULL_ASCII["%" + _letter] = _char
for _letter, _char in zip("FGHIJ", ";<=>?", strict=True):
    _FULL_ASCII["%" + _letter] = _char
for _letter, _char in zip("KLMNO", "[\\]^_", strict=True):
    _FULL_ASCII["%" + _letter] = _char
for _letter, _char in zip("PQRST", "{|}~\x7f", strict=True):
    _FULL_ASCII["%" + _letter] = _char
_FULL_ASCII.update({"%U": "\x00", "%V": "@", "%W": "`", "%X": "\x7f", "%Y": "\x7f", "%Z": "\x7f"})
for _letter, _char in zip("ABCDEFGHIJKL", "!\"#$%&'()*+,", strict=True):
    _FULL_ASCII["/" + _letter] = _char
_FULL_ASCII.update({"/O": "/", "/Z": ":"})
_SHIFTS = frozenset("$%/+")


def code39_full_ascii(raw: str) -> str:
    """Expand Code 39 Full ASCII shift pairs; the raw text when it is not a valid sequence.

    A plain Code 39 label may legitimately hold `$ % / +`; only when every one of them starts a
    defined pair is the label read as Full ASCII (the same rule hand-held scanners apply in
    their "Full ASCII when valid" mode)."""
    if not any(ch in _SHIFTS for ch in raw):
        return raw
    out = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch in _SHIFTS:
            pair = raw[i : i + 2]
            if pair not in _FULL_ASCII:
                return raw
            out.append(_FULL_ASCII[pair])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_ASCII_CONTROL_NAMES = [
    "NUL",
    "SOH",
    "STX",
    "ETX",
    "EOT",
    "ENQ",
    "ACK",
    "BEL",
    "BS",
    "HT",
    "LF",
    "VT",
    "FF",
    "CR",
    "SO",
    "SI",
    "DLE",
    "DC1",
    "DC2",
    "DC3",
    "DC4",
    "NAK",
    "SYN",
    "ETB",
    "CAN",
    "EM",
    "SUB",
    "ESC",
    "FS",
    "GS",
    "RS",
    "US",
]


def escape_non_graphical(text: str) -> str:
    """Control characters shown as `<CR>`, `<LF>`, `<GS>`, `<U+XX>`: one printable line."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20:
            out.append(f"<{_ASCII_CONTROL_NAMES[code]}>")
        elif code == 0x7F:
            out.append("<DEL>")
        elif 0x80 <= code < 0xA0:
            out.append(f"<U+{ord(ch):02X}>")
        else:
            out.append(ch)
    return "".join(out)
