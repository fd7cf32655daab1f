"""The store's SQLite file: the only place that knows tables."""

from pos.store.db import DEFAULT_TIMEZONE, DeviceIdentity, Store, open_store
from pos.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIdentityError,
    StoreLockedError,
    StoreMissingError,
    StoreNotInitialisedError,
)

__all__ = [
    "DEFAULT_TIMEZONE",
    "DeviceIdentity",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIdentityError",
    "StoreLockedError",
    "StoreMissingError",
    "StoreNotInitialisedError",
    "open_store",
]
