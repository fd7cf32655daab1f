"""Errors of the scanner package: one base, one subclass per family."""

from __future__ import annotations


class ScannerError(Exception):
    """Base of every error the scanner raises."""


class ScanRejected(ScannerError):
    """A code was read but must not reach the till (bad check digit, malformed payload).

    `text` is what was read, `reason` says why it was refused in words a cashier understands."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{reason}: {text!r}")
        self.text = text
        self.reason = reason


class SourceError(ScannerError):
    """A frame source cannot be opened or read (unreadable file, no such camera)."""


class DecoderUnavailable(ScannerError):
    """The decoding library is missing or unusable on this machine."""
