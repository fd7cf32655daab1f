"""The store's one error family. Every message says what happened and what to do next, in words
a cashier or a store manager can act on; the CLI prints it as is, without a traceback."""

from __future__ import annotations

import sqlite3


class StoreError(Exception):
    """Base of every error of the local store."""


class StoreMissingError(StoreError):
    """No database at the given path and creating one was not asked for."""


class StoreCorruptError(StoreError):
    """The file is not a store database, is damaged, or cannot be read."""


class StoreLockedError(StoreError):
    """Another `pos` already has this database open."""


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full; the transaction recorded nothing."""


class StoreNotInitialisedError(StoreError):
    """The database has no store/device identity yet."""


class StoreIdentityError(StoreError):
    """A change of identity that would break the event journal (seqs already issued)."""


# primary result codes (the low byte of an extended code)
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


def translate(exc: sqlite3.Error, path: object = None) -> StoreError | None:
    """The StoreError a low-level sqlite3 error stands for, or None when it is a plain bug
    (bad SQL, a constraint) that must surface as is."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = f" ({path})" if path is not None else ""
    if primary == SQLITE_FULL:
        return StoreFullError(
            f"The disk is full{where}: nothing was recorded. "
            "Free some space on this till, then try again."
        )
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorruptError(
            f"The store database{where} is damaged or is not a store database ({exc}). "
            "Do not delete it: restore it from a backup or ask support to repair it."
        )
    if primary in (SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_PERM, SQLITE_READONLY):
        return StoreCorruptError(
            f"The store database{where} cannot be read or written ({exc}). "
            "Check that the file exists, is readable and writable, and that the disk works."
        )
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreLockedError(
            f"The store database{where} is busy in another program ({exc}). "
            "Close the other program and try again."
        )
    return None
