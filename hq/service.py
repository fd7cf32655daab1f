"""HQ's answers to a device other than push: pull pages, snapshots, status, end of day.

Each function takes the caller's :class:`~hq.ingest.DeviceAuth` (from its token) and never a
store named in a request, so a till can only ever see its own store's data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from hq.changelog import anchor_at, pull_page, snapshot_blocks, stream_head
from hq.db import (
    Database,
    devices,
    eod_reports,
    events,
    payments,
    quarantine,
    sales,
    stock_ledger,
    stock_on_hand,
    sync_log,
    utcnow,
)
from hq.errors import NotFound
from hq.ingest import DeviceAuth
from sync.protocol import (
    STREAMS,
    DeviceReconciliationResponse,
    DeviceSeq,
    DeviceStatus,
    EodReceipt,
    EodReport,
    MethodTotal,
    OnHand,
    PullRequest,
    PullResponse,
    ReconciliationResponse,
    SalesSummary,
    SkuMovement,
    SnapshotEnd,
    SnapshotHeader,
    StoreDevice,
    snapshot_line,
)


def record_contact(
    db: Database, dev: DeviceAuth, kind: str, device_time: datetime, now: datetime
) -> float:
    """Note a pull: HQ's receive time and the device's clock offset. Returns the offset."""
    offset = (device_time - now).total_seconds()
    with db.write() as conn:
        values: dict[str, Any] = {"last_seen_at": now, "clock_offset_s": offset}
        if kind == "pull":
            values["last_pull_at"] = now
        conn.execute(update(devices).where(devices.c.id == dev.pk).values(**values))
        conn.execute(
            sync_log.insert().values(
                device_pk=dev.pk,
                kind=kind,
                received_at=now,
                device_time=device_time,
                clock_offset_s=offset,
            )
        )
    return offset


def pull(
    db: Database, dev: DeviceAuth, req: PullRequest, *, now: datetime | None = None
) -> PullResponse:
    """One page per asked stream (see :func:`hq.changelog.pull_page`)."""
    now = now or utcnow()
    offset = record_contact(db, dev, "pull", req.device_time, now)
    with db.read(snapshot=True) as conn:
        pages = {
            stream: pull_page(
                conn, stream, cursor, req.limit, dev.store_id, req.anchors.get(stream)
            )
            for stream, cursor in sorted(req.cursors.items())
        }
    return PullResponse(
        pages=pages,  # type: ignore[arg-type]
        has_more=any(p.has_more for p in pages.values()),
        server_time=now,
        clock_offset_s=offset,
    )


def snapshot(
    db: Database, dev: DeviceAuth, stream: str, after: str | None, *, chunk_bytes: int = 1 << 20
) -> Iterator[bytes]:
    """The NDJSON body of a stream's snapshot, in chunks of about ``chunk_bytes``.

    Header, rows and cursor come from ONE snapshot read transaction, so the rows are exactly
    the stream's state at that cursor (the change log numbers changes under the same lock that
    guards the rows, see :mod:`hq.changelog`). The header carries the cursor's anchor, so a
    till that loads the snapshot can have its cursor checked against HQ's history later."""
    if stream not in STREAMS:
        raise NotFound(f"no stream {stream!r}; streams are {', '.join(STREAMS)}")
    # opened here (not lazily) so that a database error becomes a 503 before any byte is sent
    cm = db.read(snapshot=True)
    conn = cm.__enter__()
    try:
        cursor = stream_head(conn, stream, dev.store_id)[0]
        anchor = anchor_at(conn, stream, cursor)
    except BaseException:
        cm.__exit__(None, None, None)
        raise

    def body() -> Iterator[bytes]:
        try:
            header = SnapshotHeader(
                stream=stream,  # type: ignore[arg-type]
                cursor=cursor,
                anchor=anchor,
                after=after,
                generated_at=utcnow(),
            )
            buf = [snapshot_line(header)]
            size = len(buf[0])
            rows = 0
            for count, block in snapshot_blocks(db, conn, stream, dev.store_id, after):
                buf.append(block)
                size += len(block)
                rows += count
                if size >= chunk_bytes:
                    yield "".join(buf).encode("utf-8")
                    buf, size = [], 0
            buf.append(snapshot_line(SnapshotEnd(rows=rows)))
            yield "".join(buf).encode("utf-8")
        finally:
            cm.__exit__(None, None, None)

    return body()


def status(db: Database, dev: DeviceAuth, *, now: datetime | None = None) -> DeviceStatus:
    with db.read() as conn:
        last = conn.execute(
            select(devices.c.last_applied_seq).where(devices.c.id == dev.pk)
        ).scalar_one()
        h = {s: stream_head(conn, s, dev.store_id)[0] for s in STREAMS}
    return DeviceStatus(
        store_id=dev.store_id,
        device_id=dev.device_id,
        last_applied_seq=int(last),
        heads=h,  # type: ignore[arg-type]
        server_time=now or utcnow(),
    )


def reconciliation(
    db: Database,
    dev: DeviceAuth,
    business_day: date,
    *,
    after: str | None = None,
    limit: int = 5000,
    now: datetime | None = None,
) -> ReconciliationResponse:
    """HQ's figures for the calling store's business day (sales, payments per method) and one
    page of on-hand per SKU (SKUs with any movement at the store), in one consistent read."""
    day = business_day.isoformat()
    with db.read(snapshot=True) as conn:
        count, total, tax = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(sales.c.total), 0),
                func.coalesce(func.sum(sales.c.tax_total), 0),
            ).where(sales.c.store_id == dev.store_id, sales.c.business_day == day)
        ).one()
        by_method = {
            r.method: MethodTotal(count=int(r.n), amount=int(r.amount))
            for r in conn.execute(
                select(
                    payments.c.method,
                    func.count().label("n"),
                    func.coalesce(func.sum(payments.c.amount), 0).label("amount"),
                )
                .where(payments.c.store_id == dev.store_id, payments.c.business_day == day)
                .group_by(payments.c.method)
            )
        }
        q = select(stock_on_hand.c.sku, stock_on_hand.c.on_hand).where(
            stock_on_hand.c.store_id == dev.store_id
        )
        if after is not None:
            q = q.where(stock_on_hand.c.sku > after)
        rows = list(conn.execute(q.order_by(stock_on_hand.c.sku).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        devs = list(
            conn.execute(
                select(devices.c.id, devices.c.device_id, devices.c.last_applied_seq)
                .where(devices.c.store_id == dev.store_id)
                .order_by(devices.c.device_id)
            )
        )
        held = conn.execute(
            select(func.count()).where(quarantine.c.store_id == dev.store_id)
        ).scalar_one()
    mine = next(int(d.last_applied_seq) for d in devs if d.id == dev.pk)
    return ReconciliationResponse(
        store_id=dev.store_id,
        business_day=business_day,
        sales=SalesSummary(
            count=int(count), total=int(total), tax_total=int(tax), by_method=by_method
        ),
        on_hand=[OnHand(sku=r.sku, on_hand=int(r.on_hand)) for r in rows],
        next_after=rows[-1].sku if more and rows else None,
        device_id=dev.device_id,
        last_applied_seq=mine,
        devices=[
            DeviceSeq(device_id=d.device_id, last_applied_seq=int(d.last_applied_seq)) for d in devs
        ],
        quarantined=int(held),
        server_time=now or utcnow(),
    )


def _sales_summary(
    conn: Connection, day: str, store_id: str, device_pk: int | None
) -> SalesSummary:
    """Sales and payments per method of one business day: the store's, or one device's."""
    where = [sales.c.store_id == store_id, sales.c.business_day == day]
    if device_pk is not None:
        where.append(sales.c.device_pk == device_pk)
    count, total, tax = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(sales.c.total), 0),
            func.coalesce(func.sum(sales.c.tax_total), 0),
        ).where(*where)
    ).one()
    by_method = {
        r.method: MethodTotal(count=int(r.n), amount=int(r.amount))
        for r in conn.execute(
            select(
                payments.c.method,
                func.count().label("n"),
                func.coalesce(func.sum(payments.c.amount), 0).label("amount"),
            )
            .join(sales, sales.c.sale_id == payments.c.sale_id)
            .where(*where)
            .group_by(payments.c.method)
        )
    }
    return SalesSummary(count=int(count), total=int(total), tax_total=int(tax), by_method=by_method)


def device_reconciliation(
    db: Database,
    dev: DeviceAuth,
    business_day: date,
    *,
    after: str | None = None,
    limit: int = 5000,
    now: datetime | None = None,
) -> DeviceReconciliationResponse:
    """HQ's figures for the calling till (from its token): its sales of the business day and
    one page of the net stock movement per SKU of its events HQ applied (rejected events moved
    nothing), plus the store's figures and tills for information, in one consistent read.

    The movements are HQ's own ledger rows, tied to the till by the event each came from
    (``events`` has the device and an index on ``event_id``). ``stock_ledger`` has no index
    that narrows it to a store or an event, on purpose (every index there is paid for by every
    sale line at ingest), so each page reads the ledger through: an end-of-day cost, once per
    till and day, not an ingest cost."""
    day = business_day.isoformat()
    with db.read(snapshot=True) as conn:
        mine = _sales_summary(conn, day, dev.store_id, dev.pk)
        store = _sales_summary(conn, day, dev.store_id, None)
        own_events = select(events.c.event_id).where(
            events.c.device_pk == dev.pk, events.c.status != "rejected"
        )
        q = select(stock_ledger.c.sku, func.sum(stock_ledger.c.delta).label("net")).where(
            stock_ledger.c.store_id == dev.store_id, stock_ledger.c.event_id.in_(own_events)
        )
        if after is not None:
            q = q.where(stock_ledger.c.sku > after)
        rows = list(
            conn.execute(
                q.group_by(stock_ledger.c.sku).order_by(stock_ledger.c.sku).limit(limit + 1)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        held = {
            int(r[0]): int(r[1])
            for r in conn.execute(
                select(quarantine.c.device_pk, func.count())
                .where(quarantine.c.store_id == dev.store_id)
                .group_by(quarantine.c.device_pk)
            )
        }
        devs = list(
            conn.execute(
                select(
                    devices.c.id,
                    devices.c.device_id,
                    devices.c.last_applied_seq,
                    devices.c.last_push_at,
                    devices.c.last_seen_at,
                    devices.c.pending_reported,
                )
                .where(devices.c.store_id == dev.store_id)
                .order_by(devices.c.device_id)
            )
        )
    last = next(int(d.last_applied_seq) for d in devs if d.id == dev.pk)
    return DeviceReconciliationResponse(
        store_id=dev.store_id,
        device_id=dev.device_id,
        business_day=business_day,
        sales=mine,
        movements=[SkuMovement(sku=r.sku, net=int(r.net)) for r in rows],
        next_after=rows[-1].sku if more and rows else None,
        last_applied_seq=last,
        quarantined=held.get(dev.pk, 0),
        store_sales=store,
        devices=[
            StoreDevice(
                device_id=d.device_id,
                last_applied_seq=int(d.last_applied_seq),
                last_push_at=d.last_push_at,
                last_seen_at=d.last_seen_at,
                pending_reported=None if d.pending_reported is None else int(d.pending_reported),
                quarantined=held.get(int(d.id), 0),
            )
            for d in devs
        ],
        server_time=now or utcnow(),
    )


def record_eod(
    db: Database, dev: DeviceAuth, report: EodReport, *, now: datetime | None = None
) -> EodReceipt:
    """Keep a store's end-of-day conclusion; the latest per store shows in ``hq report``."""
    now = now or utcnow()
    with db.write() as conn:
        conn.execute(
            eod_reports.insert().values(
                store_id=dev.store_id,
                device_pk=dev.pk,
                business_day=report.business_day.isoformat(),
                received_at=now,
                verified=report.verified,
                pending_events=report.pending_events,
                sales_mismatches=report.sales_mismatches,
                stock_mismatches=report.stock_mismatches,
                differences=json.dumps(report.differences, ensure_ascii=False),
            )
        )
        conn.execute(
            update(devices)
            .where(devices.c.id == dev.pk)
            .values(last_seen_at=now, clock_offset_s=(report.device_time - now).total_seconds())
        )
    return EodReceipt(store_id=dev.store_id, business_day=report.business_day, received_at=now)
