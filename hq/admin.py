"""What HQ's staff do to HQ: register stores and their tills, staff, catalogue and prices,
settings, retention; and the per-store report. Each function is one transaction.

HQ-owned rows change only here, and every change also goes into the stream's change log in the
same transaction (see :mod:`hq.changelog`)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from hq.changelog import ChangeWriter, row_json, staff_key, staff_value
from hq.db import (
    Database,
    barcodes,
    config,
    devices,
    eod_reports,
    prices,
    products,
    quarantine,
    sales,
    staff,
    stores,
    utcnow,
)
from hq.errors import AdminError
from sync.protocol import CLOCK_SKEW_LIMIT_S, CatalogRow, PriceRow
from sync.protocol.catalog_file import lookup_key as barcode_key

TOKEN_PREFIX = "hqt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# ---------------------------------------------------------------------------------------------
# stores, devices, staff


def add_store(
    db: Database,
    store_id: str,
    *,
    name: str,
    lat: float | None = None,
    lon: float | None = None,
    timezone: str = "Asia/Shanghai",
    device_id: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """Register a store (and its first till when ``device_id`` is given). Returns that till's
    token, which HQ does not keep: only its sha256 is stored."""
    now = now or utcnow()
    with db.write() as conn:
        if conn.execute(select(stores.c.store_id).where(stores.c.store_id == store_id)).first():
            raise AdminError(f"store {store_id} already exists")
        conn.execute(
            stores.insert().values(
                store_id=store_id, name=name, lat=lat, lon=lon, timezone=timezone, created_at=now
            )
        )
        if device_id is None:
            return None
        return _add_device(conn, store_id, device_id, now)


def add_device(db: Database, store_id: str, device_id: str, *, now: datetime | None = None) -> str:
    """Register another till of a store; returns its token (shown once)."""
    with db.write() as conn:
        if not conn.execute(select(stores.c.store_id).where(stores.c.store_id == store_id)).first():
            raise AdminError(f"no store {store_id}; add it first with `hq store add`")
        return _add_device(conn, store_id, device_id, now or utcnow())


def _add_device(conn: Connection, store_id: str, device_id: str, now: datetime) -> str:
    exists = conn.execute(
        select(devices.c.id).where(devices.c.store_id == store_id, devices.c.device_id == device_id)
    ).first()
    if exists:
        raise AdminError(f"store {store_id} already has a device {device_id}")
    token = new_token()
    conn.execute(
        devices.insert().values(
            store_id=store_id,
            device_id=device_id,
            token_hash=hash_token(token),
            last_applied_seq=0,
            created_at=now,
        )
    )
    return token


def add_staff(
    db: Database,
    staff_id: str,
    *,
    name: str,
    store_id: str | None = None,
    role: str = "guide",
    active: bool = True,
) -> None:
    """Add or update a member of staff (a shopping guide by default). Staff reach the stores
    through the config stream as ``staff:<id>``; staff bound to a store reach only that store."""
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock("config")
        if (
            store_id is not None
            and not conn.execute(
                select(stores.c.store_id).where(stores.c.store_id == store_id)
            ).first()
        ):
            raise AdminError(f"no store {store_id}")
        before = conn.execute(select(staff).where(staff.c.staff_id == staff_id)).first()
        row = {
            "staff_id": staff_id,
            "name": name,
            "store_id": store_id,
            "role": role,
            "active": active,
        }
        db.upsert(conn, staff, [row], ["staff_id"])
        if before is not None and before.store_id != store_id:
            writer.delete("config", staff_key(staff_id), store_id=before.store_id)
        if active:
            writer.upsert(
                "config",
                staff_key(staff_id),
                {"key": staff_key(staff_id), "value": staff_value(row)},
                store_id,
            )
        else:
            writer.delete("config", staff_key(staff_id), store_id=store_id)
        writer.flush()


def set_config(db: Database, key: str, value: Any) -> None:
    """A chain-wide setting, sent to every store on the config stream."""
    if key.startswith("staff:"):
        raise AdminError("keys starting with 'staff:' are reserved for staff")
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock("config")
        db.upsert(
            conn, config, [{"key": key, "value": json.dumps(value, ensure_ascii=False)}], ["key"]
        )
        writer.upsert("config", key, {"key": key, "value": value})
        writer.flush()


# ---------------------------------------------------------------------------------------------
# catalogue and prices


@dataclass(frozen=True)
class CatalogItem:
    """One product as HQ's catalogue holds it; ``price`` in minor units (None: leave as is)."""

    sku: str
    name: str
    tax_rate_bp: int
    barcodes: tuple[str, ...] = ()
    price: int | None = None
    currency: str = "CNY"


@dataclass(frozen=True)
class ImportProblem:
    line: int
    sku: str | None
    message: str


def catalog_row(item: CatalogItem) -> dict[str, Any]:
    """The catalog stream's row of a product (change log and snapshot alike)."""
    return CatalogRow(
        sku=item.sku,
        name=item.name,
        tax_rate_bp=item.tax_rate_bp,
        barcodes=sorted({c.strip() for c in item.barcodes}),
    ).to_dict()


def upsert_catalog(
    db: Database, items: Sequence[CatalogItem], *, lines: Sequence[int] | None = None
) -> list[ImportProblem]:
    """Add or change products (and their prices) in ONE transaction, logging a catalog change
    per product and a prices change per price. A barcode already held by another product is a
    problem: that item is skipped and reported; the others go in."""
    problems: list[ImportProblem] = []
    if not items:
        return problems
    line_of = list(lines) if lines is not None else list(range(1, len(items) + 1))
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock("catalog", "prices")
        codes = sorted({barcode_key(c) for i in items for c in i.barcodes})
        owner: dict[str, str] = {}
        for chunk in _chunks(codes, 5000):
            owner.update(
                (r.code, r.sku)
                for r in conn.execute(
                    select(barcodes.c.code, barcodes.c.sku).where(barcodes.c.code.in_(chunk))
                )
            )
        good: list[CatalogItem] = []
        claimed: dict[str, str] = {}
        seen: set[str] = set()
        for n, item in zip(line_of, items, strict=True):
            if item.sku in seen:
                problems.append(ImportProblem(n, item.sku, f"sku {item.sku} given twice"))
                continue
            seen.add(item.sku)
            clash = next(
                (
                    c
                    for c in map(barcode_key, item.barcodes)
                    if owner.get(c, item.sku) != item.sku or claimed.get(c, item.sku) != item.sku
                ),
                None,
            )
            if clash is not None:
                problems.append(
                    ImportProblem(
                        n, item.sku, f"barcode {clash} already belongs to another product"
                    )
                )
                continue
            for c in item.barcodes:
                claimed[barcode_key(c)] = item.sku
            good.append(item)
        if not good:
            return problems
        known = db.existing(conn, products.c.sku, [i.sku for i in good])
        fresh = [i for i in good if i.sku not in known]
        again = [i for i in good if i.sku in known]

        rows = {i.sku: catalog_row(i) for i in good}

        def product(i: CatalogItem) -> dict[str, Any]:
            return {
                "sku": i.sku,
                "name": i.name,
                "tax_rate_bp": i.tax_rate_bp,
                "active": True,
                "row": row_json(rows[i.sku]),
            }

        def price(i: CatalogItem) -> dict[str, Any]:
            return {"sku": i.sku, "price": i.price, "currency": i.currency}

        # new SKUs (all of them in a first import) go in with COPY; known ones are updated
        db.bulk_insert(conn, products, [product(i) for i in fresh])
        db.upsert(conn, products, [product(i) for i in again], ["sku"])
        for chunk in _chunks([i.sku for i in again], 5000):
            conn.execute(delete(barcodes).where(barcodes.c.sku.in_(chunk)))
        code_rows = list(
            {
                barcode_key(c): {"code": barcode_key(c), "sku": i.sku, "raw": c.strip()}
                for i in good
                for c in i.barcodes
            }.values()
        )
        db.bulk_insert(conn, barcodes, code_rows)
        priced = [i for i in good if i.price is not None]
        priced_known = db.existing(conn, prices.c.sku, [i.sku for i in priced])
        db.bulk_insert(conn, prices, [price(i) for i in priced if i.sku not in priced_known])
        db.upsert(conn, prices, [price(i) for i in priced if i.sku in priced_known], ["sku"])
        for i in good:
            writer.upsert("catalog", i.sku, rows[i.sku])
        for i in priced:
            assert i.price is not None
            writer.upsert(
                "prices", i.sku, PriceRow(sku=i.sku, price=i.price, currency=i.currency).to_dict()
            )
        writer.flush()
    return problems


def deactivate_products(db: Database, skus: Iterable[str]) -> int:
    """Take products out of the catalogue. HQ keeps the row (inactive) so that a till sale of
    it made before the store heard of the change is still a known SKU; stores get a delete."""
    skus = list(skus)
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock("catalog")
        found = [
            r.sku
            for r in conn.execute(
                select(products.c.sku).where(products.c.sku.in_(skus), products.c.active)
            )
        ]
        if found:
            conn.execute(update(products).where(products.c.sku.in_(found)).values(active=False))
        for sku in found:
            writer.delete("catalog", sku)
        writer.flush()
    return len(found)


def set_price(db: Database, sku: str, price: int, currency: str = "CNY") -> None:
    """Set one product's price (minor units)."""
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise AdminError("a price is a non-negative whole number of minor units")
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock("prices")
        if not conn.execute(select(products.c.sku).where(products.c.sku == sku)).first():
            raise AdminError(f"no product {sku} in HQ's catalogue")
        db.upsert(conn, prices, [{"sku": sku, "price": price, "currency": currency}], ["sku"])
        writer.upsert("prices", sku, PriceRow(sku=sku, price=price, currency=currency).to_dict())
        writer.flush()


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# ---------------------------------------------------------------------------------------------
# report


@dataclass(frozen=True)
class DeviceReport:
    store_id: str
    store_name: str
    device_id: str
    last_applied_seq: int
    last_sync: datetime | None
    last_push: datetime | None
    last_pull: datetime | None
    pending_reported: int | None
    oldest_pending_at: datetime | None
    clock_offset_s: float | None
    clock_flagged: bool
    sales_count: int
    sales_total: int
    quarantined: int
    stock_mismatches: int | None  # from this device's last end-of-day report; None: none yet
    eod_day: str | None = None
    eod_verified: bool | None = None
    eod_at: datetime | None = None
    eod_pending: int | None = None
    eod_sales_mismatches: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


def report(db: Database, *, business_day: str | None = None) -> list[DeviceReport]:
    """One line per device of every store: last sync, outbox lag as the device reported it at
    its last push, clock offset (flagged beyond 5 minutes), the device's sales (of one business
    day, or all), events in quarantine (per device), and the latest end-of-day result this
    device sent (verified or not, what was pending or different)."""
    with db.read() as conn:
        sales_q = select(sales.c.device_pk, func.count(), func.coalesce(func.sum(sales.c.total), 0))
        if business_day:
            sales_q = sales_q.where(sales.c.business_day == business_day)
        by_device = {
            r[0]: (int(r[1]), int(r[2])) for r in conn.execute(sales_q.group_by(sales.c.device_pk))
        }
        quarantined = {
            r[0]: int(r[1])
            for r in conn.execute(
                select(quarantine.c.device_pk, func.count()).group_by(quarantine.c.device_pk)
            )
        }
        # the latest end of day of every device (an old till's report covered its store, a
        # newer till's covers itself: either way it is that till's latest conclusion)
        last_ids = select(func.max(eod_reports.c.id)).group_by(eod_reports.c.device_pk)
        latest_eod: dict[int, Any] = {
            int(r.device_pk): r
            for r in conn.execute(select(eod_reports).where(eod_reports.c.id.in_(last_ids)))
        }
        rows = conn.execute(
            select(devices, stores.c.name.label("store_name"))
            .join(stores, stores.c.store_id == devices.c.store_id)
            .order_by(devices.c.store_id, devices.c.device_id)
        )
        out = []
        for r in rows:
            count, total = by_device.get(r.id, (0, 0))
            eod = latest_eod.get(int(r.id))
            offset = r.clock_offset_s
            out.append(
                DeviceReport(
                    store_id=r.store_id,
                    store_name=r.store_name,
                    device_id=r.device_id,
                    last_applied_seq=int(r.last_applied_seq),
                    last_sync=r.last_seen_at,
                    last_push=r.last_push_at,
                    last_pull=r.last_pull_at,
                    pending_reported=r.pending_reported,
                    oldest_pending_at=r.oldest_pending_at,
                    clock_offset_s=offset,
                    clock_flagged=offset is not None and abs(offset) > CLOCK_SKEW_LIMIT_S,
                    sales_count=count,
                    sales_total=total,
                    quarantined=quarantined.get(r.id, 0),
                    stock_mismatches=None if eod is None else int(eod.stock_mismatches),
                    eod_day=None if eod is None else eod.business_day,
                    eod_verified=None if eod is None else bool(eod.verified),
                    eod_at=None if eod is None else eod.received_at,
                    eod_pending=None if eod is None else int(eod.pending_events),
                    eod_sales_mismatches=None if eod is None else int(eod.sales_mismatches),
                )
            )
        return out
