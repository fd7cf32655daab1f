"""A real HQ (its app over a SQLite file) and real tills (store files, the production engine)
joined by a fault-injecting network, plus the checks the sync tests share."""

from __future__ import annotations

import gc
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from hq import admin
from hq.app import create_app
from hq.db import (
    Database,
    devices,
    events,
    payments,
    prices,
    products,
    quarantine,
    sales,
    stock_ledger,
    stock_on_hand,
)
from pos.domain.cart import Cart, Payment
from pos.domain.gtin import check_digit
from pos.services.sale import SaleReceipt, SaleService
from pos.services.sync import HQSettings, make_engine, save_hq_settings
from pos.store import Store, open_store
from pos.store.sync_state import SqliteSyncState
from sync.client import RetryPolicy
from sync.engine import EngineConfig, SyncEngine, SyncReport
from tests.sync.faults import FaultyTransport

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
FAST = EngineConfig(backoff_initial_s=0, backoff_max_s=0, backoff_jitter_s=0)
NO_WAIT = RetryPolicy(attempts=1)


def ean_of(sku: str) -> str:
    """A valid EAN-13 made from a SKU (test catalogues give each product one)."""
    body = "69" + f"{int.from_bytes(sku.encode(), 'big') % 10**10:010d}"
    return body + str(check_digit(body))


class Clock:
    """A till's clock: HQ time plus a skew the test controls."""

    def __init__(self, base: Callable[[], datetime], skew: timedelta = timedelta(0)) -> None:
        self.base = base
        self.skew = skew

    def __call__(self) -> datetime:
        return self.base() + self.skew


class HQClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class HQ:
    path: Path
    db: Database
    clock: HQClock = field(default_factory=HQClock)

    def __post_init__(self) -> None:
        self.app = create_app(self.db, clock=self.clock)
        self._asgi = httpx.ASGITransport(app=self.app)

    def transport(self) -> httpx.AsyncBaseTransport:
        """The network to this HQ: whatever app HQ runs now (it survives a restore)."""
        return _ToCurrentApp(self)

    def backup(self, to: Path) -> None:
        """HQ's nightly backup, taken while it runs (SQLite's online backup)."""
        with sqlite3.connect(self.path) as live, sqlite3.connect(to) as copy:
            live.backup(copy)

    def restore(self, backup: Path) -> None:
        """HQ's disk is lost; the backup is put back and HQ restarted on it."""
        # a snapshot stream a cut connection abandoned still holds its read transaction until
        # it is collected: collect it now, while its database is open (a server closes it)
        gc.collect()
        self.db.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, self.path)
        self.db = Database(str(self.path))
        self.app = create_app(self.db, clock=self.clock)
        self._asgi = httpx.ASGITransport(app=self.app)

    def register(self, store_id: str, device_id: str) -> str:
        try:
            token = admin.add_store(
                self.db, store_id, name=f"Store {store_id}", device_id=device_id
            )
        except Exception:
            token = admin.add_device(self.db, store_id, device_id)
        assert token is not None
        return token

    def seed(self, skus: Iterable[str], price: int = 1000, tax: int = 1300) -> None:
        admin.upsert_catalog(
            self.db,
            [
                admin.CatalogItem(
                    sku=s, name=f"商品 {s}", tax_rate_bp=tax, barcodes=(ean_of(s),), price=price
                )
                for s in skus
            ],
        )

    # -- what HQ holds ---------------------------------------------------------------------------

    def scalar(self, stmt: Any) -> Any:
        with self.db.read() as conn:
            return conn.execute(stmt).scalar_one()

    def rows(self, stmt: Any) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(stmt))

    def sale_ids(self, store_id: str) -> list[str]:
        return [
            r[0] for r in self.rows(select(sales.c.sale_id).where(sales.c.store_id == store_id))
        ]

    def on_hand(self, store_id: str) -> dict[str, int]:
        return {
            r.sku: int(r.on_hand)
            for r in self.rows(
                select(stock_on_hand.c.sku, stock_on_hand.c.on_hand).where(
                    stock_on_hand.c.store_id == store_id
                )
            )
            if r.on_hand != 0
        }

    def ledger_sums(self, store_id: str) -> dict[str, int]:
        return {
            r[0]: int(r[1])
            for r in self.rows(
                select(stock_ledger.c.sku, func.sum(stock_ledger.c.delta))
                .where(stock_ledger.c.store_id == store_id)
                .group_by(stock_ledger.c.sku)
            )
            if r[1] != 0
        }

    def event_seqs(self, store_id: str, device_id: str) -> list[tuple[int, str, str]]:
        """(seq, event_id, status) of a device's processed events, in seq order."""
        pk = self.device_pk(store_id, device_id)
        return [
            (int(r.seq), r.event_id, r.status)
            for r in self.rows(
                select(events.c.seq, events.c.event_id, events.c.status)
                .where(events.c.device_pk == pk)
                .order_by(events.c.seq)
            )
        ]

    def device_pk(self, store_id: str, device_id: str) -> int:
        return int(
            self.scalar(
                select(devices.c.id).where(
                    devices.c.store_id == store_id, devices.c.device_id == device_id
                )
            )
        )

    def last_applied(self, store_id: str, device_id: str) -> int:
        return int(
            self.scalar(
                select(devices.c.last_applied_seq).where(
                    devices.c.store_id == store_id, devices.c.device_id == device_id
                )
            )
        )

    def quarantined(self, store_id: str) -> int:
        return int(
            self.scalar(
                select(func.count())
                .select_from(quarantine)
                .where(quarantine.c.store_id == store_id)
            )
        )

    def payments_total(self, store_id: str) -> int:
        return int(
            self.scalar(
                select(func.coalesce(func.sum(payments.c.amount), 0)).where(
                    payments.c.store_id == store_id
                )
            )
        )

    def catalogue(self) -> dict[str, tuple[str, int, int, tuple[str, ...]]]:
        """Active products with a price: sku -> (name, price, tax, sorted raw barcodes)."""
        from hq.db import barcodes

        codes: dict[str, list[str]] = {}
        for r in self.rows(select(barcodes.c.sku, barcodes.c.raw)):
            codes.setdefault(r.sku, []).append(r.raw)
        out = {}
        for r in self.rows(
            select(products.c.sku, products.c.name, products.c.tax_rate_bp, prices.c.price)
            .join(prices, prices.c.sku == products.c.sku)
            .where(products.c.active)
        ):
            out[r.sku] = (
                r.name,
                int(r.price),
                int(r.tax_rate_bp),
                tuple(sorted(codes.get(r.sku, []))),
            )
        return out


class _ToCurrentApp(httpx.AsyncBaseTransport):
    def __init__(self, hq: HQ) -> None:
        self.hq = hq

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.hq._asgi.handle_async_request(request)


def make_hq(tmp_path: Path, name: str = "hq") -> HQ:
    path = tmp_path / f"{name}.db"
    db = Database(str(path))
    db.create_schema()
    return HQ(path, db)


@dataclass
class Till:
    """One store file with its engine, its sale service and its network to HQ."""

    hq: HQ
    path: Path
    store_id: str
    device_id: str
    token: str
    clock: Clock
    net: FaultyTransport
    config: EngineConfig = FAST
    retry: RetryPolicy = NO_WAIT
    store: Store = field(init=False)
    engine: SyncEngine = field(init=False)
    sales: list[str] = field(default_factory=list)  # receipts shown (sale ids)

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        self.store = open_store(self.path)
        if not self.store.has_identity():
            self.store.set_identity(self.store_id, self.device_id, now=self.clock())
            save_hq_settings(self.store, "http://hq.test", self.token)
        self.engine = make_engine(
            self.store,
            self.path,
            HQSettings("http://hq.test", self.token),
            transport=self.net,
            clock=self.clock,
            config=self.config,
            retry=self.retry,
        )
        self.service = SaleService(self.store, clock=self.clock)

    @property
    def state(self) -> SqliteSyncState:
        return self.engine.puller  # type: ignore[return-value]

    async def aclose(self) -> None:
        await self.engine.client.http.aclose()
        self.store.close()

    def reopen(self) -> None:
        """The till program died and is started again on the same file."""
        self.store.close()
        self.open()

    async def sync(self) -> SyncReport:
        return await self.engine.sync_once()

    def sell(self, *items: tuple[str, int], pay: str = "cash") -> SaleReceipt:
        cart = Cart()
        for sku, qty in items:
            product = self.service.lookup(sku)
            assert product is not None, f"{sku} is not on this till"
            cart = cart.add(product, qty)
        from pos.domain.cart import Tender

        payment = (
            Payment.cash(cart.total)
            if pay == "cash"
            else Payment(Tender(pay), cart.total, reference="WX-1" if pay == "wallet" else None)
        )
        receipt = self.service.complete(cart, [payment])
        self.sales.append(receipt.sale_id)
        return receipt

    # -- what the till holds --------------------------------------------------------------------

    def q(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.store.conn.execute(sql, params).fetchall()

    def pending(self) -> int:
        return int(self.q("SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0])

    def on_hand(self) -> dict[str, int]:
        return {sku: int(n) for sku, n in self.q("SELECT sku, on_hand FROM stock_on_hand") if n}

    def ledger_sums(self) -> dict[str, int]:
        return {
            sku: int(n)
            for sku, n in self.q("SELECT sku, sum(delta) FROM stock_ledger GROUP BY sku")
            if n
        }

    def catalogue(self) -> dict[str, tuple[str, int, int, tuple[str, ...]]]:
        codes: dict[str, list[str]] = {}
        for sku, raw in self.q("SELECT sku, raw FROM barcodes"):
            codes.setdefault(sku, []).append(raw)
        return {
            sku: (name, int(price), int(tax), tuple(sorted(codes.get(sku, []))))
            for sku, name, price, tax in self.q(
                "SELECT sku, name, price, tax_rate_bp FROM products WHERE active = 1"
            )
        }

    def cursors(self) -> dict[str, int]:
        return {s: int(c) for s, c in self.q("SELECT stream, cursor FROM sync_cursor")}


def make_till(
    hq: HQ,
    tmp_path: Path,
    store_id: str = "S1",
    device_id: str = "till-1",
    *,
    skew: timedelta = timedelta(0),
    **kw: Any,
) -> Till:
    token = hq.register(store_id, device_id)
    net = FaultyTransport(hq.transport())
    return Till(
        hq,
        tmp_path / f"{store_id}-{device_id}.db",
        store_id,
        device_id,
        token,
        Clock(lambda: hq.clock.now, skew),
        net,
        **kw,
    )


def half_written_sales(path: Path) -> list[str]:
    """Sales missing a part (lines, payments, stock movements or the event): must be none."""
    conn = sqlite3.connect(path)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT s.sale_id FROM sales s WHERE"
                " NOT EXISTS (SELECT 1 FROM sale_lines l WHERE l.sale_id = s.sale_id)"
                " OR NOT EXISTS (SELECT 1 FROM payments p WHERE p.sale_id = s.sale_id)"
                " OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = s.event_id)"
                " OR (SELECT count(*) FROM sale_lines l WHERE l.sale_id = s.sale_id) !="
                "    (SELECT count(*) FROM stock_ledger m WHERE m.ref_event_id = s.event_id)"
            )
        ]
    finally:
        conn.close()
