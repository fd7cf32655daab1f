"""The sync engine's one error family.

Two kinds matter to the caller: :class:`HQUnavailable` (network down, HQ or its database down,
HQ busy: retry later with backoff, nothing is lost) and :class:`HQRefused` (HQ answered that the
request itself is wrong: resending it unchanged will fail again, a person must look). Every
message says what happened and what to do next."""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Base of every error of the sync engine."""


class HQUnavailable(SyncError):
    """HQ could not be reached or asked to retry later (transport error, 5xx, 429)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class HQRefused(SyncError):
    """HQ answered a 4xx: this request will not succeed by repeating it."""

    def __init__(self, message: str, *, status_code: int, code: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.detail = detail


class HQAuthError(HQRefused):
    """HQ does not accept this till's token (401/403)."""


class ProtocolMismatch(SyncError):
    """HQ answered something this till cannot read (a different protocol version?)."""


class NotConfigured(SyncError):
    """The till has no HQ address or token."""


class SnapshotIncomplete(HQUnavailable):
    """A snapshot download was cut before its end line; it resumes where it stopped."""


class HQLostEvents(SyncError):
    """HQ was restored from a backup older than events this till has already pruned."""
