"""Store functions accept the open Store, its sqlite_utils Database, or the raw connection, so
services, the sync engine and tests can pass whichever they hold."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Union

import sqlite_utils

if TYPE_CHECKING:
    from pos.store.db import Store

DbLike = Union["Store", sqlite_utils.Database, sqlite3.Connection]


def connection(db: DbLike) -> sqlite3.Connection:
    if isinstance(db, sqlite3.Connection):
        return db
    conn = getattr(db, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        return conn
    raise TypeError(f"expected a Store, Database or sqlite3.Connection, got {type(db).__name__}")


@contextlib.contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Join the caller's transaction, or run in a new one when there is none."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
