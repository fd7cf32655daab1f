"""The value a scan becomes: what was read, from where, when, and what it means to the till."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Literal

Source = Literal["camera", "video", "image", "wedge", "keyboard"]
Kind = Literal[
    "product", "variable_measure", "gs1", "guide", "member", "pickup", "payment", "unknown"
]
SYMBOLOGIES = ("EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code 128", "Code 39", "ITF", "QR Code")

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ScanEvent:
    """One accepted scan. Rejected codes never become a ScanEvent (see `scanner.parse_text`).

    - `text`: the decoded text exactly as read (UPC-E stays 8 digits; see `gtin` for the GTIN).
    - `kind` and the fields after it say what the code means:
      product          -> `gtin` (EAN/UPC/ITF-14/GS1) and/or `sku` (the chain's product QR)
      variable_measure -> `gtin` (the whole code), `item_code`, and `price_minor` or `weight_g`
      gs1              -> `gtin` and `ai` (every application identifier), `weight_g`,
                          `price_minor`, `lot`, `expiry`, `serial` when present
      guide / member   -> `value` = the guide's or member's id
      pickup           -> `value` = the pickup code, `order_id` when the QR carries it
      payment          -> `value` = the customer's payment code, `provider` ("wechat" | "alipay");
                          recorded, never charged by the scanner
      unknown          -> only `text`
    """

    text: str
    symbology: str | None
    source: Source
    at: datetime
    kind: Kind
    gtin: str | None = None  # always 14 digits
    sku: str | None = None
    value: str | None = None
    item_code: str | None = None
    price_minor: int | None = None
    weight_g: int | None = None
    provider: str | None = None
    order_id: str | None = None
    lot: str | None = None
    expiry: date | None = None
    serial: str | None = None
    ai: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("ScanEvent.at must be timezone-aware")
        if not isinstance(self.ai, MappingProxyType):
            object.__setattr__(self, "ai", MappingProxyType(dict(self.ai)))

    @property
    def lookup_code(self) -> str:
        """What the till looks the product up by: the SKU, the item code of a weighed or priced
        label, the GTIN, or the raw text."""
        return self.sku or self.item_code or self.gtin or self.text

    def describe(self) -> str:
        """The meaning in one line, for people (`pos scan`, notifications)."""
        parts: list[str] = [self.kind]
        for label, value in (
            ("gtin", self.gtin),
            ("sku", self.sku),
            ("item", self.item_code),
            ("price_minor", self.price_minor),
            ("weight_g", self.weight_g),
            ("provider", self.provider),
            ("order", self.order_id),
            ("value", self.value),
            ("lot", self.lot),
            ("expiry", self.expiry.isoformat() if self.expiry else None),
            ("serial", self.serial),
        ):
            if value is not None:
                parts.append(f"{label}={value}")
        if self.ai:
            parts.append("ai=" + ",".join(f"({k}){v}" for k, v in self.ai.items()))
        return " ".join(parts)
