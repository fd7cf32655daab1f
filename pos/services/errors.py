"""The services' error family (the store's errors pass through as they are)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the use cases' own errors; messages are fit to show as they are."""


class ImportFileError(ServiceError):
    """A catalogue file that cannot be read at all (missing, not UTF-8, no usable header)."""
