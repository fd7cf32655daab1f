"""The one error family of the pure rules, so callers can tell a refused input from a bug."""

from __future__ import annotations


class DomainError(ValueError):
    """A value or an action the store's rules refuse. The message is fit to show a cashier."""


class MoneyError(DomainError):
    """An amount or a rate that cannot be read or is out of range."""


class CartError(DomainError):
    """A change to a cart that the rules refuse (bad quantity, unknown line)."""


class PaymentError(DomainError):
    """Payments that do not settle a cart (too little, too much, missing wallet code...)."""
