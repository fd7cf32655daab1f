"""Which store fulfils an online order: the nearest one that has everything, by HQ's ledger.

Available at a store = ``on_hand`` (the ledger's projection) - HQ's pending holds (live
assignments' quantities, ``order_holds``) - the safety stock; a SKU a store rejected (or the
whole store, for "no staff"/"closing") is blocked for a while. Stores whose last sync is older
than ``stale_after`` get nothing new: their stock is not known.

It must stay fast at 10,000 stores x 200,000 SKUs, so nothing loops over every store and a
typical order costs two statements:

1. how many stores hold each SKU of the order in the quantity asked, each count stopping at
   ``holder_limit`` (index ``ix_stock_on_hand_sku``);
2. a SKU fewer stores hold than that names all the candidates there are: those stores (with
   splitting on, the holders of any rare SKU), nearest first;
3. otherwise rings around the delivery point (25, 200, 1000 km...): the fresh stores in a
   lat/lon bounding box (index ``ix_stores_lat_lon``), the ``max_candidates`` nearest by a
   flat approximation, measured exactly (haversine) in Python.

Each candidate query is ONE statement that also brings, per candidate store, the order's SKUs
on hand (primary key of the projection), HQ's holds and the blocks. The nearest store with
everything wins. Candidates are measured nearest first in two batches: ``first_candidates``,
and only when none of them has everything, the rest up to ``max_candidates`` (most orders are
served by one of the nearest few, and every candidate costs a few index probes per SKU).

When no single store can serve the order and splitting is on, the order is split greedily
(the store covering most of what is left first, nearer on ties) over at most
``max_split_stores`` stores; what nobody has is backordered."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, intersect, literal, select, union

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
    max_candidates: int = 60
    first_candidates: int = 12
    holder_limit: int = 500
    radii_km: tuple[float, ...] = (25.0, 200.0)
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
                elif name in (
                    "safety_stock",
                    "max_split_stores",
                    "max_candidates",
                    "first_candidates",
                    "holder_limit",
                ):
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
    common: CommonSkus | None = None,
) -> Plan:
    """Where each needed quantity should come from (see the module docstring)."""
    want: dict[str, int] = defaultdict(int)
    for n in needs:
        want[n.sku] += n.qty
    s = _Search(dict(want), frozenset(exclude), settings, now)
    if not want:
        return Plan((), ())
    if only_store is not None:
        if only_store not in s.exclude:
            _measure(conn, s, stores.c.store_id == only_store, None)
        return _decide(s, needs)
    if near is None:
        return Plan((), tuple(needs))
    counts = _holder_counts(conn, s, common)
    if not settings.split and min(counts.values()) == 0:
        return Plan((), tuple(needs))  # some SKU is nowhere in the quantity asked
    rare = [sku for sku, n in sorted(counts.items()) if n < settings.holder_limit]
    if rare:
        # few stores hold these: those stores are all the candidates there are
        held = [
            select(stock_on_hand.c.store_id).where(
                stock_on_hand.c.sku == sku, stock_on_hand.c.on_hand >= s.want[sku]
            )
            for sku in rare
            if counts[sku] > 0
        ]
        if held:
            ids = (union(*held) if settings.split else intersect(*held)).subquery("holders")
            _in_batches(conn, s, None, near, None, ids)
        return _decide(s, needs)
    for radius in (*settings.radii_km, *settings.wide_radii_km):
        box = bounding_box(near[0], near[1], radius)
        inside = and_(
            stores.c.lat.between(box.min_lat, box.max_lat),
            stores.c.lon.between(box.min_lon, box.max_lon),
        )
        _in_batches(conn, s, inside, near, radius, None)
        if _nearest_full(s) is not None or len(s.distance) >= settings.max_candidates:
            break
    return _decide(s, needs)


def _in_batches(
    conn: Connection,
    s: _Search,
    where: Any,
    near: tuple[float, float],
    radius_km: float | None,
    holders: Any,
) -> None:
    """Measure the nearest ``first_candidates``; the next ones (up to ``max_candidates`` in
    all) only if none of those has everything and there may be more (a full batch, none of it
    beyond the ring)."""
    budget = s.settings.max_candidates - len(s.distance)
    first = min(s.settings.first_candidates, budget)
    if first <= 0:
        return
    before = len(s.distance)
    returned = _measure(conn, s, where, near, radius_km, holders=holders, limit=first)
    kept = len(s.distance) - before
    if _nearest_full(s) is None and returned == first == kept and budget > first:
        _measure(conn, s, where, near, radius_km, holders=holders, limit=budget - first)


# --- candidates -------------------------------------------------------------------------------


class CommonSkus:
    """How many stores hold a SKU, remembered for ``ttl_s`` as "at least ``holder_limit``"
    or "some": counting the holders reads that many rows, and a SKU's spread over the chain
    changes over days, not minutes. Only the rare/common choice is remembered; the holders of
    a rare SKU are always read fresh, and "nobody" is never remembered (a SKU nobody had must
    be found as soon as a store receives it). A lost update only costs a recount."""

    def __init__(self, ttl_s: float = 600.0) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[tuple[str, int], tuple[float, int]] = {}

    def get(self, sku: str, qty: int) -> int | None:
        hit = self._seen.get((sku, qty))
        if hit is None or time.monotonic() - hit[0] >= self.ttl_s:
            return None
        return hit[1]

    def put(self, sku: str, qty: int, count: int) -> None:
        if count <= 0:
            return
        if len(self._seen) > 500_000:
            self._seen.clear()
        self._seen[(sku, qty)] = (time.monotonic(), count)


def _holder_counts(conn: Connection, s: _Search, common: CommonSkus | None) -> dict[str, int]:
    """How many stores hold each SKU in the quantity asked, counted up to ``holder_limit``
    (one statement for the SKUs not remembered; each count stops at the limit)."""
    cap = s.settings.holder_limit
    out: dict[str, int] = {}
    cols: list[Any] = []
    skus: list[str] = []
    for sku in sorted(s.want):
        known = None if common is None else common.get(sku, s.want[sku])
        if known is not None:
            out[sku] = known
            continue
        skus.append(sku)
        some = (
            select(literal(1).label("one"))
            .where(stock_on_hand.c.sku == sku, stock_on_hand.c.on_hand >= s.want[sku])
            .limit(cap)
            .subquery()
        )
        cols.append(select(func.count()).select_from(some).scalar_subquery().label(f"n{len(cols)}"))
    if cols:
        row = conn.execute(select(*cols)).one()
        for i, sku in enumerate(skus):
            out[sku] = int(row[i])
            if common is not None:
                common.put(sku, s.want[sku], min(out[sku], cap))
    return out


def _measure(
    conn: Connection,
    s: _Search,
    where: Any,
    near: tuple[float, float] | None,
    radius_km: float | None = None,
    *,
    holders: Any = None,
    limit: int | None = None,
) -> int:
    """One statement: the stores matching ``where`` (nearest ``max_candidates`` first, by a
    flat approximation that the bounding box keeps honest), each with whether it synced
    recently, what it has available of each of the order's SKUs (on hand - HQ's holds) and
    its blocks. Every per-store figure is a lookup by primary key (a scalar subquery per
    SKU), so the plan cannot turn into a scan of a popular SKU across all stores. Returns how
    many stores the statement brought (``limit``: at most; default ``max_candidates``)."""
    src: Any = stores
    if holders is not None:
        # the few stores holding a rare SKU, their coordinates by primary key (a correlated
        # lookup each, rather than a scan of every store to hash-join a few hundred)
        def coord(col: Any) -> Any:
            return select(col).where(stores.c.store_id == holders.c.store_id).scalar_subquery()

        src = select(
            holders.c.store_id,
            coord(stores.c.lat).label("lat"),
            coord(stores.c.lon).label("lon"),
        ).cte("located")
        # computed once, not again for the sort and for the output
        src = src.prefix_with("MATERIALIZED")
    cand = select(src.c.store_id, src.c.lat, src.c.lon)
    if where is not None:
        cand = cand.where(where)
    skip = sorted(s.exclude | set(s.distance))
    if skip:
        cand = cand.where(src.c.store_id.not_in(skip))
    if near is not None:
        k = math.cos(math.radians(near[0])) ** 2
        dlat, dlon = src.c.lat - near[0], src.c.lon - near[1]
        cand = cand.where(src.c.lat.is_not(None)).order_by(dlat * dlat + dlon * dlon * k)
    c = cand.limit(s.settings.max_candidates if limit is None else limit).cte("cand")
    soh, held, blocks = stock_on_hand, order_holds, availability_blocks
    cutoff = s.now - s.settings.stale_after
    skus = sorted(s.want)
    cols: list[Any] = [
        c.c.store_id,
        c.c.lat,
        c.c.lon,
        # a correlated max, not EXISTS: one index probe per candidate where EXISTS may be
        # planned as a hash of every device
        select(func.max(devices.c.last_seen_at))
        .where(devices.c.store_id == c.c.store_id)
        .scalar_subquery()
        .label("seen"),
        select(literal(1))
        .where(blocks.c.store_id == c.c.store_id, blocks.c.sku == "*", blocks.c.until > s.now)
        .exists()
        .label("closed"),
    ]
    for i, sku in enumerate(skus):
        on_hand = (
            select(soh.c.on_hand)
            .where(soh.c.store_id == c.c.store_id, soh.c.sku == sku)
            .scalar_subquery()
        )
        holds = (
            select(held.c.held)
            .where(held.c.store_id == c.c.store_id, held.c.sku == sku)
            .scalar_subquery()
        )
        cols.append((on_hand - func.coalesce(holds, 0)).label(f"f{i}"))
        cols.append(
            select(literal(1))
            .where(blocks.c.store_id == c.c.store_id, blocks.c.sku == sku, blocks.c.until > s.now)
            .exists()
            .label(f"b{i}")
        )
    rows = conn.execute(select(*cols)).all()
    for r in rows:
        d = None if near is None else haversine_km(near[0], near[1], r.lat, r.lon)
        if radius_km is not None and d is not None and d > radius_km:
            continue  # a corner of the box, beyond the ring: a wider ring takes it
        s.distance[r.store_id] = d
        have: dict[str, int] = {}
        if r.seen is not None and _aware(r.seen) >= cutoff and not r.closed:
            for i, sku in enumerate(skus):
                free = r[5 + 2 * i]
                if free is not None and not r[6 + 2 * i]:
                    have[sku] = int(free) - s.settings.safety_stock
        s.avail[r.store_id] = have
    return len(rows)


def _aware(value: datetime | str) -> datetime:
    """A timestamp read through a bare subquery: SQLite gives text, without a zone (UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
