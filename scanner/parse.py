"""Validation and meaning of a scanned text, whatever read it (camera, wedge scanner, keyboard).

GTINs, UPC-E expansion, GS1 element strings and restricted-circulation (variable-measure)
numbers are interpreted by biip; this module only decides which interpretation applies and
applies the store's configurable variable-measure layouts. The chain's own QR payloads and the
payment-code rules live in `scanner.schemes`.

Rejection: a code that claims to be an EAN/UPC/GTIN but fails its check digit (or a damaged
chain payload, or a variable-measure label whose price check digit is wrong) raises
`ScanRejected`. Callers that must not stop (the camera pipeline) catch it and count it; the till
shows the reason to the cashier for typed or wedge input.

Without a symbology (wedge or keyboard text), a string of 8, 12, 13 or 14 digits is taken to be
an EAN/UPC/GTIN and must carry a valid check digit. Wedge scanners configured to send AIM
symbology identifiers (`]E0`, `]C1`, `]Q1`, ...) are understood too, and then a Code 128 number
of such a length is not mistaken for a GTIN."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import biip
from biip.checksums import gs1_price_weight_check_digit
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin, GtinFormat
from biip.rcn import Rcn, RcnUsage
from biip.upc import Upc

from scanner.errors import ScanRejected
from scanner.events import Kind, ScanEvent, Source
from scanner.schemes import parse_chain_payload, payment_provider

__all__ = ["DEFAULT_LAYOUTS", "MeasureLayout", "ParseSettings", "parse_text"]


@dataclass(frozen=True)
class MeasureLayout:
    """How a store's scales print price or weight into a restricted-circulation EAN-13.

    `pattern` covers the 12 digits before the EAN check digit: `P` = prefix and item code
    (the first two `P`s are the prefix), `V` = the value, `C` = a price/weight check digit
    (GS1's 4- or 5-digit variable-measure check), anything else (`0`) is ignored. `decimals` is
    how many of the value's digits are decimals: of the currency unit for a price, of the
    kilogram for a weight."""

    prefixes: frozenset[str]
    pattern: str
    measure: Literal["price", "weight"]
    decimals: int

    def __post_init__(self) -> None:
        if len(self.pattern) != 12 or not self.pattern.startswith("PP") or "V" not in self.pattern:
            raise ValueError(f"bad variable-measure pattern {self.pattern!r}")
        if self.pattern.count("C") > 1:
            raise ValueError("at most one check digit in a variable-measure pattern")

    def apply(self, code13: str, *, currency_decimals: int) -> tuple[str, int | None, int | None]:
        """(item code, price in minor units, weight in grams) from a valid EAN-13."""
        value_digits = "".join(d for d, p in zip(code13, self.pattern, strict=False) if p == "V")
        item = "".join(d for d, p in zip(code13, self.pattern, strict=False) if p == "P")[2:]
        if "C" in self.pattern:
            check = int(code13[self.pattern.index("C")])
            if len(value_digits) in (4, 5) and gs1_price_weight_check_digit(value_digits) != check:
                raise ScanRejected(code13, "price/weight check digit does not match")
        value = Decimal(value_digits).scaleb(-self.decimals)
        if self.measure == "price":
            return item, _to_int(value.scaleb(currency_decimals)), None
        return item, None, _to_int(value.scaleb(3))


def _to_int(value: Decimal) -> int:
    # The one place the scanner rounds: a label finer than a fen or a gram is rounded half up.
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# A common layout for store scales in China: prefix, 5-digit item code, 5-digit value.
DEFAULT_LAYOUTS: tuple[MeasureLayout, ...] = (
    MeasureLayout(frozenset({"20", "21", "22", "23", "24"}), "PPPPPPPVVVVV", "price", 2),
    MeasureLayout(frozenset({"25", "26", "27", "28", "29"}), "PPPPPPPVVVVV", "weight", 3),
    MeasureLayout(frozenset({"02"}), "PPPPPPPVVVVV", "price", 2),
)


@dataclass(frozen=True)
class ParseSettings:
    """What a store configures about its codes."""

    layouts: Sequence[MeasureLayout] = DEFAULT_LAYOUTS
    currency_decimals: int = 2  # CNY: fen
    extra: Mapping[str, Any] = field(default_factory=dict)

    def layout_for(self, code13: str) -> MeasureLayout | None:
        for layout in self.layouts:
            if code13[:2] in layout.prefixes:
                return layout
        return None


DEFAULT_SETTINGS = ParseSettings()

EAN_SYMBOLOGIES = frozenset({"EAN-13", "EAN-8", "UPC-A", "UPC-E"})
GTIN_LENGTHS = frozenset({8, 12, 13, 14})

# AIM symbology identifiers a wedge scanner may prefix -> our symbology name.
_AIM = {
    "E0": "EAN-13",
    "E4": "EAN-8",
    "C0": "Code 128",
    "C1": "Code 128",
    "A0": "Code 39",
    "A1": "Code 39",
    "I0": "ITF",
    "I1": "ITF",
    "Q1": "QR Code",
    "Q3": "QR Code",
}
_AIM_GS1 = frozenset({"C1", "Q3", "e0", "d2"})
_HRI = re.compile(r"^\(\d{2,4}\)")


def parse_text(
    text: str,
    *,
    symbology: str | None = None,
    source: Source = "wedge",
    at: datetime | None = None,
    gs1: bool = False,
    settings: ParseSettings = DEFAULT_SETTINGS,
) -> ScanEvent:
    """Validate and interpret one scanned text; raises `ScanRejected` for a code the till must
    not take (see module docstring). `gs1` says the symbol was marked GS1 (FNC1 first)."""
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("scan time must be timezone-aware")
    raw = text
    body = text.strip() if source in ("wedge", "keyboard") or symbology != "QR Code" else text
    if not body.strip():
        raise ScanRejected(text, "empty scan")

    if body.startswith("]") and len(body) > 3 and body[1:3] in {*_AIM, *_AIM_GS1}:
        aim = body[1:3]
        symbology = symbology or _AIM.get(aim)
        gs1 = gs1 or aim in _AIM_GS1
        body = body[3:]
        raw = body

    def event(kind: Kind, **fields: Any) -> ScanEvent:
        return ScanEvent(raw, symbology, source, when, kind, **fields)

    chain = parse_chain_payload(body)
    if chain is not None:
        if chain.kind == "product":
            return event("product", sku=chain.value)
        return event(chain.kind, value=chain.value, order_id=chain.order_id)

    stripped = body.strip()
    digits = stripped.isascii() and stripped.isdigit()

    if digits and not gs1:
        provider = payment_provider(stripped)
        if provider is not None and symbology in (None, "QR Code", "Code 128"):
            return event("payment", value=stripped, provider=provider)
        if symbology in EAN_SYMBOLOGIES or (symbology is None and len(stripped) in GTIN_LENGTHS):
            return _ean(stripped, symbology, event, settings)
        if symbology == "ITF" and len(stripped) == 14:
            return event("product", gtin=_valid_gtin(stripped).as_gtin_14())

    if symbology in EAN_SYMBOLOGIES:
        raise ScanRejected(text, f"{symbology} must be digits")

    if gs1 or _HRI.match(stripped) or "\x1d" in stripped or stripped.lower().startswith("http"):
        message = _gs1_message(stripped, gs1=gs1)
        if message is not None:
            return _gs1_event(message, event)
    return event("unknown")


def _valid_gtin(code: str) -> Gtin:
    try:
        return Gtin.parse(code)
    except Exception as exc:  # biip's ParseError: the message names the check digit
        raise ScanRejected(code, f"not a valid barcode number ({exc})") from exc


def _ean(
    code: str, symbology: str | None, event: Callable[..., ScanEvent], settings: ParseSettings
) -> ScanEvent:
    if (symbology == "UPC-E" and len(code) in (6, 7, 8)) or (
        symbology is None and len(code) == 8 and code[0] in "01" and _upce_only(code)
    ):
        try:
            upc = Upc.parse(code)
        except Exception as exc:
            raise ScanRejected(code, f"not a valid UPC-E number ({exc})") from exc
        return event("product", gtin=upc.as_gtin_14())
    if (symbology == "EAN-8" and len(code) != 8) or (symbology == "EAN-13" and len(code) != 13):
        raise ScanRejected(code, f"a {symbology} has {symbology[-2:].strip('-')} digits")
    gtin = _valid_gtin(code)
    gtin14 = gtin.as_gtin_14()
    if (
        isinstance(gtin, Rcn)
        and gtin.usage == RcnUsage.GEOGRAPHICAL
        and gtin.format != GtinFormat.GTIN_8
    ):
        code13 = gtin14[1:]
        layout = settings.layout_for(code13)
        if layout is not None:
            item, price, weight = layout.apply(code13, currency_decimals=settings.currency_decimals)
            return event(
                "variable_measure", gtin=gtin14, item_code=item, price_minor=price, weight_g=weight
            )
    return event("product", gtin=gtin14)


def _upce_only(code: str) -> bool:
    """An 8-digit wedge text that is a valid UPC-E but not a valid EAN-8 is read as UPC-E."""
    try:
        Gtin.parse(code)
        return False
    except Exception:
        try:
            Upc.parse(code)
            return True
        except Exception:
            return False


def _gs1_message(text: str, *, gs1: bool) -> GS1Message | None:
    if _HRI.match(text):
        try:
            return GS1Message.parse_hri(text)
        except Exception as exc:
            raise ScanRejected(text, f"not a valid GS1 code ({exc})") from exc
    result = biip.parse(text)
    if result.gs1_digital_link_uri is not None:
        return result.gs1_digital_link_uri.as_gs1_message()
    if result.gs1_message is not None and (gs1 or "\x1d" in text):
        return result.gs1_message
    if gs1:
        raise ScanRejected(text, f"not a valid GS1 code ({result.gs1_message_error})")
    return None


def _gs1_event(message: GS1Message, event: Callable[..., ScanEvent]) -> ScanEvent:
    ai: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for element in message.element_strings:
        code = element.ai.ai
        ai[code] = element.value
        if code in ("01", "02"):
            if element.gtin is None:
                raise ScanRejected(
                    element.value, f"GTIN in GS1 code is not valid ({element.gtin_error})"
                )
            fields.setdefault("gtin", element.gtin.as_gtin_14())
        elif code.startswith("310") and element.decimal is not None:
            fields["weight_g"] = _to_int(element.decimal * 1000)
        elif code[:3] in ("392", "393") and element.decimal is not None:
            fields["price_minor"] = _to_int(element.decimal * 100)
        elif code == "10":
            fields["lot"] = element.value
        elif code == "21":
            fields["serial"] = element.value
        elif (
            code in ("17", "15", "16")
            and element.date is not None
            and (code == "17" or "expiry" not in fields)
        ):
            fields["expiry"] = element.date
    return event("gs1", ai=ai, **fields)
