"""Builders the HQ tests share: a till that makes events the way the store does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import httpx

from hq import admin
from hq.db import Database
from sync import protocol as p

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def sale_payload(
    store_id: str,
    device_id: str,
    lines: list[tuple[str, int, int]],
    *,
    payments: list[tuple[str, int]] | None = None,
    business_day: str = "2026-11-22",
    sale_id: UUID | None = None,
    sale_no: int = 1,
) -> dict[str, Any]:
    """A ``sale.completed`` v1 payload; lines are (sku, qty, unit_price)."""
    body_lines = []
    for n, (sku, qty, price) in enumerate(lines, start=1):
        body_lines.append(
            {
                "line_no": n,
                "sku": sku,
                "name": f"品 {sku}",
                "qty": qty,
                "unit_price": price,
                "tax_rate_bp": 1300,
                "line_total": qty * price,
                "tax_amount": (qty * price * 1300 + 5650) // 11300,
                "movement_id": str(uuid4()),
                "code": None,
                "stock_short": False,
            }
        )
    total = sum(line["line_total"] for line in body_lines)
    pays = payments if payments is not None else [("cash", total)]
    return {
        "sale_id": str(sale_id or uuid4()),
        "sale_no": sale_no,
        "short_id": f"S{sale_no}",
        "store_id": store_id,
        "device_id": device_id,
        "business_day": business_day,
        "completed_at": "2026-11-22T10:00:00+08:00",
        "currency": "CNY",
        "guide_id": None,
        "total": total,
        "tax_total": sum(line["tax_amount"] for line in body_lines),
        "lines": body_lines,
        "payments": [
            {"method": m, "amount": a, "tendered": None, "change": None, "reference": None}
            for m, a in pays
        ],
    }


@dataclass
class Till:
    """One registered device and its outbox, the way a store would hold it."""

    store_id: str
    device_id: str
    token: str
    outbox: list[p.EventEnvelope] = field(default_factory=list)
    sale_no: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def event(self, type_: str, payload: dict[str, Any], **over: Any) -> p.EventEnvelope:
        env = p.EventEnvelope.build(
            event_id=over.pop("event_id", uuid4()),
            device_id=over.pop("device_id", self.device_id),
            seq=over.pop("seq", len(self.outbox) + 1),
            type=type_,
            occurred_at=T0.astimezone(SHANGHAI),
            payload=payload,
            **over,
        )
        self.outbox.append(env)
        return env

    def sale(self, lines: list[tuple[str, int, int]], **kw: Any) -> p.EventEnvelope:
        self.sale_no += 1
        kw.setdefault("sale_no", self.sale_no)
        return self.event(
            p.SALE_COMPLETED, sale_payload(self.store_id, self.device_id, lines, **kw)
        )

    def movements(
        self, items: list[tuple[str, int]], type_: str = "stock.received"
    ) -> p.EventEnvelope:
        return self.event(
            type_,
            {
                "movements": [
                    {"movement_id": str(uuid4()), "sku": s, "delta": d, "reason": "receipt"}
                    for s, d in items
                ]
            },
        )

    def push_body(
        self,
        batch: list[p.EventEnvelope],
        device_time: datetime | None = None,
        pending: int | None = None,
    ) -> dict[str, Any]:
        return p.PushRequest(device_time=device_time or T0, batch=batch, pending=pending).to_dict()

    async def push(
        self, client: httpx.AsyncClient, batch: list[p.EventEnvelope], **kw: Any
    ) -> p.PushResponse:
        r = await client.post(p.PUSH_PATH, json=self.push_body(batch, **kw), headers=self.headers)
        assert r.status_code == 200, r.text
        return p.PushResponse.model_validate_json(r.content)

    async def pull(
        self, client: httpx.AsyncClient, cursors: dict[str, int], limit: int = 100
    ) -> p.PullResponse:
        body = p.PullRequest(device_time=T0, cursors=cursors, limit=limit).to_dict()  # type: ignore[arg-type]
        r = await client.post(p.PULL_PATH, json=body, headers=self.headers)
        assert r.status_code == 200, r.text
        return p.PullResponse.model_validate_json(r.content)


def register(db: Database, store_id: str, device_id: str = "till-1", **kw: Any) -> Till:
    token = admin.add_store(db, store_id, name=f"Store {store_id}", device_id=device_id, **kw)
    assert token is not None
    return Till(store_id, device_id, token)


def add_till(db: Database, store_id: str, device_id: str) -> Till:
    return Till(store_id, device_id, admin.add_device(db, store_id, device_id))


def seed_catalog(db: Database, skus: list[str], price: int = 1000) -> None:
    admin.upsert_catalog(
        db,
        [
            admin.CatalogItem(
                sku=s, name=f"商品 {s}", tax_rate_bp=1300, barcodes=(f"code-{s}",), price=price
            )
            for s in skus
        ],
    )
