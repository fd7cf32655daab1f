"""Which store fulfils an online order: the nearest one that has everything, by HQ's ledger.

Available at a store = ``on_hand`` (the ledger's projection) - HQ's pending holds (live
assignments' quantities, ``order_holds``) - the safety stock; a SKU a store rejected (or the
whole store, for "no staff"/"closing") is blocked for a while. Stores whose last sync is older
than ``stale_after`` get nothing new: their stock is not known.

It must stay fast at 10,000 stores x 200,000 SKUs, so nothing loops over every store:

1. rings around the delivery point (10, 50, 200 km...): the stores in a lat/lon bounding box
   (index ``ix_stores_lat_lon``), nearest first by a flat approximation, at most
   ``max_candidates``; then the stock of the order's SKUs at just those stores, read by
   primary key. The nearest store with everything wins.
2. nobody near: a SKU few stores hold (fewer than ``holder_limit``, index
   ``ix_stock_on_hand_sku``) names the only stores that can help, wherever they are.
3. otherwise wider rings, still capped at ``max_candidates`` nearest.

When no single store can serve the order and splitting is on, the order is split greedily
(the store covering most of what is left first, nearer on ties) over at most
``max_split_stores`` stores; what nobody has is backordered."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, literal, or_, select

from hq.db import availability_blocks, config, devices, order_holds, stock_on_hand, stores
from hq.geo import bounding_box, haversine_km


@dataclass(frozen=True)
class OrderSettings:
    """Dispatch and reassignment settings. Stored as chain settings ``orders.<name>`` (``hq
    config set orders.split false``; durations in minutes, as ``<name>_minutes``)."""

    accept_window: timedelta = timedelta(minutes=10)
    stale_after: timedelta = timedelta(minutes=30)
    force_after: timedelta = timedelta(hours=2)
    block_for: timedelta = timedelta(hours=4)
    backorder_retry: timedelta = timedelta(minutes=15)
    safety_stock: int = 0
    split: bool = True
    max_split_stores: int = 3
    max_candidates: int = 200
    holder_limit: int = 2000
    radii_km: tuple[float, ...] = (10.0, 50.0, 200.0)
    wide_radii_km: tuple[float, ...] = (1000.0, 20000.0)
    tick_seconds: float = 10.0
    sse_poll_seconds: float = 5.0

    @classmethod
    def load(cls, conn: Connection, base: OrderSettings | None = None) -> OrderSettings:
        """The defaults (or ``base``) overridden by the ``orders.*`` chain settings."""
        out = base or cls()
        changes: dict[str, Any] = {}
        rows = conn.execute(
            select(config.c.key, config.c.value).where(config.c.key.like("orders.%"))
        )
        names = {f.name: f for f in fields(cls)}
        for key, raw in rows:
            name = key.removeprefix("orders.")
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            try:
                if name.endswith("_minutes") and name.removesuffix("_minutes") in names:
                    changes[name.removesuffix("_minutes")] = timedelta(minutes=float(value))
                elif name in ("safety_stock", "max_split_stores", "max_candidates", "holder_limit"):
                    changes[name] = int(value)
                elif name == "split":
                    changes[name] = value in (True, "true", "yes", "on", 1, "1")
            except (TypeError, ValueError):
                continue  # a mistyped setting keeps the default rather than stopping dispatch
        return replace(out, **changes) if changes else out


@dataclass(frozen=True)
class Need:
    line_id: str
    sku: str
    qty: int


@dataclass(frozen=True)
class Part:
    store_id: str
    distance_km: float | None
    lines: tuple[Need, ...]


@dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]
    missing: tuple[Need, ...]


@dataclass
class _Search:
    want: dict[str, int]
    exclude: frozenset[str]
    settings: OrderSettings
    now: datetime
    distance: dict[str, float | None] = field(default_factory=dict)
    avail: dict[str, dict[str, int]] = field(default_factory=dict)


def plan(
    conn: Connection,
    needs: Sequence[Need],
    *,
    near: tuple[float, float] | None,
    only_store: str | None = None,
    exclude: Iterable[str] = (),
    settings: OrderSettings,
    now: datetime,
) -> Plan:
    """Where each needed quantity should come from (see the module docstring)."""
    want: dict[str, int] = defaultdict(int)
    for n in needs:
        want[n.sku] += n.qty
    s = _Search(dict(want), frozenset(exclude), settings, now)
    if not want:
        return Plan((), ())
    if only_store is not None:
        if only_store not in s.exclude and _fresh(conn, [only_store], s):
            _measure(conn, s, {only_store: None})
        return _decide(s, needs)
    if near is None:
        return Plan((), tuple(needs))
    lat, lon = near
    for radius in settings.radii_km:
        _measure(conn, s, _ring(conn, s, lat, lon, radius))
        if _nearest_full(s) is not None or len(s.distance) >= settings.max_candidates:
            break
    if _nearest_full(s) is None:
        holders = _rare_holders(conn, s)
        if holders is not None:
            found = _located(conn, s, holders, lat, lon)
            _measure(conn, s, found)
        else:
            for radius in settings.wide_radii_km:
                _measure(conn, s, _ring(conn, s, lat, lon, radius))
                if _nearest_full(s) is not None:
                    break
    return _decide(s, needs)


# --- candidates -------------------------------------------------------------------------------


def _fresh_clause(cutoff: datetime) -> Any:
    return (
        select(literal(1))
        .where(devices.c.store_id == stores.c.store_id, devices.c.last_seen_at >= cutoff)
        .exists()
    )


def _ring(
    conn: Connection, s: _Search, lat: float, lon: float, radius_km: float
) -> dict[str, float | None]:
    """Up to ``max_candidates`` fresh stores within ``radius_km``, nearest first."""
    box = bounding_box(lat, lon, radius_km)
    k = math.cos(math.radians(lat)) ** 2
    approx = (stores.c.lat - lat) * (stores.c.lat - lat) + (stores.c.lon - lon) * (
        stores.c.lon - lon
    ) * k
    q = (
        select(stores.c.store_id, stores.c.lat, stores.c.lon)
        .where(
            stores.c.lat.between(box.min_lat, box.max_lat),
            stores.c.lon.between(box.min_lon, box.max_lon),
            _fresh_clause(s.now - s.settings.stale_after),
        )
        .order_by(approx)
        .limit(s.settings.max_candidates + len(s.exclude))
    )
    out: dict[str, float | None] = {}
    for r in conn.execute(q):
        if r.store_id in s.exclude or r.store_id in s.distance:
            continue
        d = haversine_km(lat, lon, r.lat, r.lon)
        if d <= radius_km:
            out[r.store_id] = d
    return out


def _fresh(conn: Connection, store_ids: Sequence[str], s: _Search) -> set[str]:
    cutoff = s.now - s.settings.stale_after
    return {
        r[0]
        for r in conn.execute(
            select(devices.c.store_id)
            .where(devices.c.store_id.in_(list(store_ids)), devices.c.last_seen_at >= cutoff)
            .distinct()
        )
    }


def _rare_holders(conn: Connection, s: _Search) -> set[str] | None:
    """Stores holding the order's rarest SKUs in the quantity needed: the intersection of the
    holder lists that are short (with splitting on, their union). None when every SKU is held
    by ``holder_limit`` stores or more (then the holders say nothing about where to look)."""
    limit = s.settings.holder_limit
    found: set[str] | None = None
    for sku, qty in sorted(s.want.items()):
        rows = conn.execute(
            select(stock_on_hand.c.store_id)
            .where(stock_on_hand.c.sku == sku, stock_on_hand.c.on_hand >= qty)
            .limit(limit)
        ).all()
        if len(rows) >= limit:
            continue
        ids = {r[0] for r in rows}
        if found is not None:
            ids = (found | ids) if s.settings.split else (found & ids)
        found = ids
    return None if found is None else found - s.exclude - set(s.distance)


def _located(
    conn: Connection, s: _Search, store_ids: set[str], lat: float, lon: float
) -> dict[str, float | None]:
    """Fresh stores among ``store_ids`` with their distance, nearest ``max_candidates``."""
    if not store_ids:
        return {}
    cutoff = s.now - s.settings.stale_after
    out: list[tuple[float, str]] = []
    ids = sorted(store_ids)
    for i in range(0, len(ids), 900):
        for r in conn.execute(
            select(stores.c.store_id, stores.c.lat, stores.c.lon).where(
                stores.c.store_id.in_(ids[i : i + 900]),
                stores.c.lat.is_not(None),
                _fresh_clause(cutoff),
            )
        ):
            out.append((haversine_km(lat, lon, r.lat, r.lon), r.store_id))
    out.sort()
    return {sid: d for d, sid in out[: s.settings.max_candidates]}


def _measure(conn: Connection, s: _Search, found: dict[str, float | None]) -> None:
    """Read what the order's SKUs have available at the stores in ``found``."""
    if not found:
        return
    s.distance.update(found)
    ids = list(found)
    skus = list(s.want)
    avail: dict[str, dict[str, int]] = {sid: {} for sid in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = (
            select(
                stock_on_hand.c.store_id,
                stock_on_hand.c.sku,
                (stock_on_hand.c.on_hand - func.coalesce(order_holds.c.held, 0)).label("free"),
            )
            .select_from(
                stock_on_hand.outerjoin(
                    order_holds,
                    and_(
                        order_holds.c.store_id == stock_on_hand.c.store_id,
                        order_holds.c.sku == stock_on_hand.c.sku,
                    ),
                )
            )
            .where(stock_on_hand.c.store_id.in_(chunk), stock_on_hand.c.sku.in_(skus))
        )
        for r in conn.execute(q):
            avail[r.store_id][r.sku] = int(r.free) - s.settings.safety_stock
        for b in conn.execute(
            select(availability_blocks.c.store_id, availability_blocks.c.sku).where(
                availability_blocks.c.store_id.in_(chunk),
                or_(availability_blocks.c.sku.in_(skus), availability_blocks.c.sku == "*"),
                availability_blocks.c.until > s.now,
            )
        ):
            if b.sku == "*":
                avail[b.store_id] = {}
            else:
                avail[b.store_id][b.sku] = 0
    s.avail.update(avail)


# --- the choice -------------------------------------------------------------------------------


def _by_distance(s: _Search) -> list[str]:
    return sorted(s.avail, key=lambda sid: (s.distance.get(sid) or 0.0, sid))


def _nearest_full(s: _Search) -> str | None:
    for sid in _by_distance(s):
        have = s.avail[sid]
        if all(have.get(sku, 0) >= qty for sku, qty in s.want.items()):
            return sid
    return None


def _decide(s: _Search, needs: Sequence[Need]) -> Plan:
    full = _nearest_full(s)
    if full is not None:
        return Plan((Part(full, s.distance.get(full), tuple(needs)),), ())
    if not s.settings.split:
        return Plan((), tuple(needs))
    left = dict(s.want)
    takes: list[tuple[str, dict[str, int]]] = []
    pool = _by_distance(s)
    while pool and any(left.values()) and len(takes) < s.settings.max_split_stores:

        def covered(sid: str) -> int:
            have = s.avail[sid]
            return sum(min(max(have.get(sku, 0), 0), q) for sku, q in left.items())

        best = max(pool, key=lambda sid: (covered(sid), -(s.distance.get(sid) or 0.0)))
        if covered(best) <= 0:
            break
        have = s.avail[best]
        take = {sku: min(max(have.get(sku, 0), 0), q) for sku, q in left.items()}
        take = {k: v for k, v in take.items() if v > 0}
        for sku, q in take.items():
            left[sku] -= q
        takes.append((best, take))
        pool.remove(best)
    # give each store's SKU quantities to the order's lines, in line order
    parts: list[Part] = []
    rest = [n.qty for n in needs]
    for sid, take in takes:
        lines: list[Need] = []
        for i, n in enumerate(needs):
            q = min(rest[i], take.get(n.sku, 0))
            if q > 0:
                lines.append(Need(n.line_id, n.sku, q))
                rest[i] -= q
                take[n.sku] -= q
        parts.append(Part(sid, s.distance.get(sid), tuple(lines)))
    missing = tuple(Need(n.line_id, n.sku, rest[i]) for i, n in enumerate(needs) if rest[i] > 0)
    return Plan(tuple(parts), missing)
