"""The chain's own QR payloads and the customers' mobile payment codes.

Chain payloads (prefixes are case-insensitive, surrounding whitespace is ignored):

| kind    | printed as                                         | example                              |
|---------|----------------------------------------------------|--------------------------------------|
| product | `https://<any host>/p/<SKU>` (http too; a query    | `https://shop.example.com/p/A-1002`  |
|         | string or fragment after the SKU is ignored)       |                                      |
| product | `SKU:<sku>`                                        | `SKU:A-1002`                         |
| guide   | `GUIDE:<id>` (shopping-guide badge)                | `GUIDE:G0042`                        |
| member  | `MEMBER:<id>` (loyalty card / member app)          | `MEMBER:88001234`                    |
| pickup  | `PICKUP:<order_id>:<code>` (the online order QR)   | `PICKUP:ORD-20260101-17:482913`      |
| pickup  | `P<code>` typed or read aloud at the counter       | `P482913`                            |

A SKU, guide id or member id is 1-64 characters of `A-Z a-z 0-9 . _ -`; an order id the same;
a pickup code is 4-10 digits. A payload that starts like one of ours but breaks these rules is
rejected (a damaged or forged label), not passed on as unknown text.

Payment codes (the customer shows a barcode/QR in the wallet app; the till records it and hands
it to the payment step, it is never charged here):
- WeChat Pay: 18 digits starting 10-15.
- Alipay: 16-24 digits starting 25-30.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scanner.errors import ScanRejected

ChainKind = Literal["product", "guide", "member", "pickup"]

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_PRODUCT_URL = re.compile(rf"^https?://[^/\s?#]+/p/({_ID})/?(?:[?#]\S*)?$", re.IGNORECASE)
_TAGGED = re.compile(r"^(SKU|GUIDE|MEMBER|PICKUP):(.*)$", re.IGNORECASE | re.DOTALL)
_ID_ONLY = re.compile(rf"^{_ID}$")
_PICKUP = re.compile(rf"^({_ID}):(\d{{4,10}})$")
_PICKUP_SHORT = re.compile(r"^[Pp](\d{4,10})$")


@dataclass(frozen=True)
class ChainPayload:
    kind: ChainKind
    value: str  # the SKU, guide id, member id or pickup code
    order_id: str | None = None


def parse_chain_payload(text: str) -> ChainPayload | None:
    """Our own payload in `text`, None when it is not one of ours; raises ScanRejected when it
    claims to be ours but is malformed."""
    t = text.strip()
    m = _PRODUCT_URL.match(t)
    if m:
        return ChainPayload("product", m.group(1))
    m = _PICKUP_SHORT.match(t)
    if m:
        return ChainPayload("pickup", m.group(1))
    m = _TAGGED.match(t)
    if not m:
        return None
    tag, body = m.group(1).upper(), m.group(2).strip()
    if tag == "PICKUP":
        pm = _PICKUP.match(body)
        if not pm:
            raise ScanRejected(text, "damaged pickup code (expected PICKUP:<order>:<digits>)")
        return ChainPayload("pickup", pm.group(2), order_id=pm.group(1))
    if not _ID_ONLY.match(body):
        raise ScanRejected(text, f"damaged {tag.lower()} code")
    kind: ChainKind = {"SKU": "product", "GUIDE": "guide", "MEMBER": "member"}[tag]  # type: ignore[assignment]
    return ChainPayload(kind, body)


# (provider, allowed two-digit prefixes, allowed lengths)
PAYMENT_RULES: tuple[tuple[str, frozenset[str], range], ...] = (
    ("wechat", frozenset(str(n) for n in range(10, 16)), range(18, 19)),
    ("alipay", frozenset(str(n) for n in range(25, 31)), range(16, 25)),
)


def payment_provider(text: str) -> str | None:
    """The wallet a payment code belongs to, by its published prefix and length; else None."""
    t = text.strip()
    if not (t.isascii() and t.isdigit()):
        return None
    for provider, prefixes, lengths in PAYMENT_RULES:
        if t[:2] in prefixes and len(t) in lengths:
            return provider
    return None
