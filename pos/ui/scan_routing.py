"""What a scanned code is for: a product, a shopping guide's badge, a wallet payment code...

The `scanner` package validates and parses codes (`scanner.parse_text`); this module turns its
ScanEvent into the few facts a screen routes on, so screens do not depend on the scanner's
classes. A code the scanner refuses (a wrong check digit, a damaged chain label) becomes an
"invalid" intent with the scanner's reason, for the cashier to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# kinds whose code is looked up in the catalogue
PRODUCT_KINDS = frozenset({"product", "gs1", "unknown"})


@dataclass(frozen=True, slots=True)
class ScanIntent:
    kind: str  # the scanner's kind ("product", "guide", "payment", ...) or "invalid"
    text: str  # the code as read
    source: str  # "wedge" | "keyboard" | "camera"
    lookup: str = ""  # what to look a product up by (GTIN-14, SKU, item code or the text)
    value: str | None = None  # the id that matters for the kind (guide id, wallet code, ...)
    problem: str | None = None  # why an "invalid" code was refused, in the cashier's words
    event: Any = None  # the scanner's ScanEvent, for screens that need more (pickup order id)

    @property
    def is_product(self) -> bool:
        return self.kind in PRODUCT_KINDS


def interpret(text: str, source: str, parsed: Any = None) -> ScanIntent:
    """Classify one code. `parsed` is the scanner's event when the source already parsed it
    (camera scans arrive parsed); otherwise the scanner parses the text here."""
    event = parsed
    if event is None:
        # imported here: the scanner package brings OpenCV and biip, which the till does not
        # need to get on screen (see warm_up)
        from scanner import ScannerError, parse_text

        try:
            event = parse_text(text, source=source)  # type: ignore[arg-type]
        except ScannerError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            return ScanIntent("invalid", text, source, lookup=text.strip(), problem=reason)
    raw_kind = getattr(event, "kind", None) or "unknown"
    kind = str(getattr(raw_kind, "value", raw_kind))
    read = str(getattr(event, "text", None) or text)
    lookup = getattr(event, "lookup_code", None) or read.strip()
    value = getattr(event, "value", None)
    return ScanIntent(
        kind=kind,
        text=read,
        source=source,
        lookup=str(lookup),
        value=str(value) if value is not None else None,
        event=event,
    )


def warm_up() -> None:
    """Load the scanner's parser ahead of the first scan (run in a thread after start-up)."""
    import scanner  # noqa: F401
