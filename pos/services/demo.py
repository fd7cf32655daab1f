"""A demo catalogue that looks like a Chinese supermarket's, of any size up to 2,057,280 SKUs.

Deterministic from a seed: the same seed gives the same SKUs, names, codes and prices, so demos,
tests and benchmarks can name items. Names mix Chinese and English brands and products; codes are
valid EAN-13 with China's 690-699 prefixes, unique by construction (a bijection of the row
number), about 5 % of items have no barcode (sold by name) and about 8 % have a second one."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pos.services.catalog_parse import RawRecord

if TYPE_CHECKING:
    from pos.services.catalog_import import ImportReport, Progress
    from pos.store import Store

MAX_DEMO_SKUS = 2_057_280
DEMO_SKUS = 20_000  # a demo store that is ready in a second
DEMO_SEED = 2024
DEMO_STORE_ID = "DEMO-SH-001"
DEMO_DEVICE_ID = "DEMO-TILL-1"

_BRANDS = (
    "农夫山泉", "康师傅", "统一", "伊利", "蒙牛", "娃哈哈", "旺旺", "海天", "老干妈", "三只松鼠",
    "良品铺子", "达利园", "洽洽", "金龙鱼", "光明", "青岛", "雪花", "白象", "今麦郎", "维达",
    "Coca-Cola", "Pepsi", "Nestlé", "Lay's", "Oreo", "Dove", "Colgate", "Lipton", "Heinz",
    "Pringles", "Kellogg's", "Danone", "Ferrero", "M&M's", "Head & Shoulders", "Tempo",
)  # fmt: skip
_PRODUCTS = (
    "饮用天然水", "红烧牛肉面", "纯牛奶", "酸奶", "苏打饼干", "薯片", "瓜子", "生抽酱油",
    "食用调和油", "黑巧克力", "去屑洗发水", "美白牙膏", "茉莉绿茶", "鲜橙汁", "全麦面包",
    "火腿肠", "东北大米", "香皂", "抽纸", "啤酒", "冰红茶", "老坛酸菜面", "鸡精", "米醋",
    "Mineral Water", "Instant Noodles", "Whole Milk", "Greek Yogurt", "Butter Cookies",
    "Potato Chips", "Dark Chocolate", "Shampoo", "Toothpaste", "Green Tea", "Orange Juice",
    "Sandwich Bread", "Sparkling Water", "Cereal", "Ketchup", "Tissues",
)  # fmt: skip
_VARIANTS = (
    "原味", "香辣味", "无糖", "低脂", "经典装", "家庭装", "Classic", "Zero Sugar", "Original",
    "Lite", "番茄味", "清爽型", "", "", "",
)  # fmt: skip
_SIZES = (
    "330ml", "550ml", "1.5L", "250ml×12", "100g", "500g", "5kg", "70g", "6 pack", "2包装",
    "1L", "200g", "12罐", "24 pack",
)  # fmt: skip
_PRICES = (
    "1.50", "2", "2.50", "3.50", "4.90", "5", "6.80", "8.80", "9.90", "12.50", "15.80",
    "19.90", "23.50", "29.90", "39.90", "49", "59", "88", "99", "128", "199", "268",
)  # fmt: skip
_RATES = ("13",) * 14 + ("9",) * 5 + ("6",)  # goods 13 %, farm produce and food staples 9 %

# EAN bodies: 690-699 prefix + 9 digits; row i maps to (i * A + B) mod 10^9, a bijection
_SPACE = 10**9
_A = 387_420_489  # odd and not a multiple of 5: invertible mod 10^9
_SECOND = 500_000_000  # second barcodes come from a disjoint half of the row-number space


_DIGITS = "0123456789"


def _ean(n: int, seed_offset: int) -> str:
    v = (n * _A + seed_offset) % _SPACE
    body = f"69{v % 10}{v:09d}"
    # the GS1 check digit from the ASCII sum (see sync.protocol.catalog_file): a 12-digit body's
    # '0's weigh 48 * 24 = 1152 in it
    ascii_ = body.encode()
    return body + _DIGITS[(1152 - sum(ascii_) - 2 * sum(ascii_[1::2])) % 10]


def demo_records(n: int, seed: int = DEMO_SEED) -> Iterator[RawRecord]:
    """Raw records (as a CSV reader yields them) for an n-SKU demo catalogue."""
    if not 0 <= n <= MAX_DEMO_SKUS:
        raise ValueError(f"a demo catalogue has 0 to {MAX_DEMO_SKUS:,} SKUs, not {n:,}")
    rnd = random.Random(seed)
    offset = rnd.randrange(_SPACE)
    nb, np_, nv, ns = len(_BRANDS), len(_PRODUCTS), len(_VARIANTS), len(_SIZES)
    # names are "brand product variant size" (no variant: "brand product size"), built from
    # two precomputed halves
    heads = [f"{brand} {product} " for brand in _BRANDS for product in _PRODUCTS]
    tails = [f"{variant} {size}" if variant else size for variant in _VARIANTS for size in _SIZES]
    prices, rates = _PRICES, _RATES
    npr, nr = len(prices), len(rates)
    stock_texts = [str(units) for units in range(200)]
    bits = rnd.getrandbits
    for i in range(n):
        r = bits(64)
        name = heads[r % nb * np_ + (r >> 8) % np_] + tails[(r >> 16) % nv * ns + (r >> 24) % ns]
        shape = (r >> 32) % 100  # 0-4: no barcode, 5-12: two barcodes
        if shape < 5:
            codes = ""
        elif shape < 13:
            codes = _ean(i, offset) + "|" + _ean(i + _SECOND, offset)
        else:
            codes = _ean(i, offset)
        yield (
            i + 2,  # the line it would have in a CSV file with a header
            f"D{i:07d}",
            name,
            prices[(r >> 52) % npr],
            rates[(r >> 58) % nr],
            codes,
            stock_texts[(r >> 40) % 200] if (r >> 48) % 10 else "0",
        )


def write_demo_csv(path: Path, n: int, seed: int = DEMO_SEED) -> Path:
    """Write the demo catalogue as an importable CSV file."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("sku", "name", "barcodes", "price", "tax_rate", "initial_stock"))
        writer.writerows(
            (sku, name, codes, price, rate, qty)
            for _, sku, name, price, rate, codes, qty in demo_records(n, seed)
        )
    return path


def demo_codes(n: int, seed: int = DEMO_SEED) -> Iterator[tuple[str, str]]:
    """(sku, first barcode) of the demo catalogue, for benchmarks and tests."""
    for _, sku, _, _, _, codes, _ in demo_records(n, seed):
        if codes:
            yield sku, codes.split("|")[0]


@dataclass(frozen=True, slots=True)
class DemoStore:
    path: Path
    created: bool  # False when an existing demo store was reused
    skus: int
    store_id: str
    device_id: str


def load_demo(
    store: Store,
    n: int,
    seed: int = DEMO_SEED,
    *,
    progress: Progress | None = None,
    replace: bool = False,
    now: datetime | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    """Generate and load an n-SKU demo catalogue into an open Store (the import path, rows
    checked like a file's)."""
    from pos.services.catalog_import import load_source
    from pos.services.catalog_parse import DemoSource

    if not 0 <= n <= MAX_DEMO_SKUS:
        raise ValueError(f"a demo catalogue has 0 to {MAX_DEMO_SKUS:,} SKUs, not {n:,}")
    return load_source(
        store, DemoSource(n, seed), progress=progress, replace=replace, now=now,
        parallel=parallel,
    )  # fmt: skip


def create_demo_store(
    path: Path,
    skus: int = DEMO_SKUS,
    seed: int = DEMO_SEED,
    *,
    store_id: str = DEMO_STORE_ID,
    device_id: str = DEMO_DEVICE_ID,
    timezone: str = "Asia/Shanghai",
    progress: Progress | None = None,
    now: datetime | None = None,
) -> DemoStore:
    """Create the demo store at `path`, or reuse it if it already has a catalogue.

    Opens and closes the store itself: call it before the app opens the same file."""
    from pos.store import catalog, open_store

    when = now or datetime.now().astimezone()
    with open_store(Path(path)) as store:
        if not store.has_identity():
            store.set_identity(store_id, device_id, timezone, now=when)
        identity = store.identity
        if catalog.has_products(store.conn):
            return DemoStore(Path(path), False, 0, identity.store_id, identity.device_id)
        report = load_demo(store, skus, seed, progress=progress, now=when)
        return DemoStore(Path(path), True, report.loaded, identity.store_id, identity.device_id)
