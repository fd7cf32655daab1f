"""HQ's errors: one base, one subclass per family, each knowing the HTTP answer it becomes."""

from __future__ import annotations

from typing import Any


class HQError(Exception):
    """Base of every error HQ raises on purpose."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthorized(HQError):
    status_code = 401
    code = "unauthorized"


class Forbidden(HQError):
    status_code = 403
    code = "forbidden"


class DeviceMismatch(Forbidden):
    code = "device_mismatch"


class NotFound(HQError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(HQError):
    status_code = 413
    code = "payload_too_large"


class Invalid(HQError):
    status_code = 422
    code = "validation_error"


class BatchTooLarge(Invalid):
    code = "batch_too_large"


class BatchOutOfOrder(Invalid):
    code = "batch_out_of_order"


class Unavailable(HQError):
    """HQ's database cannot be reached or is busy: the client retries later."""

    status_code = 503
    code = "unavailable"


class AdminError(HQError):
    """A mistake in an admin command (unknown store, duplicate device...)."""
