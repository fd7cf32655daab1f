"""End of day: sync until the outbox is drained, then compare THIS till with HQ.

Each till has its own file, ledger and outbox, while a store may have several tills: the
store's figures at HQ are the sum of all of them, so no single till can match them. What a till
can check exactly is what it produced itself. HQ answers, for the calling till (its token
says which), its sales of the business day with payments per method and the net stock movement
per SKU of its events HQ applied (``GET /sync/v1/reconciliation/device``); the till compares
them with its own sales and its own ledger (every row of which is its own movement, see
:func:`pos.store.reconcile.own_movements`).

"Verified" means: the sync finished, nothing of this till is pending or refused, HQ has applied
every event of this till, and its sales and its stock movements match HQ's exactly. A store
with one till also compares on-hand store-wide (then the till's figures are the store's). The
store's other tills are listed with their last sync, for information: their sales are in the
store-wide totals, never in this till's verdict.

An HQ that does not know the per-till question yet (404) gets the old store-wide one, which
can only verify a store with one till."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pos.domain.money import format_amount
from pos.services.sync import sync_until_drained
from pos.store._conn import DbLike
from pos.store.reconcile import (
    DayFigures,
    MethodFigure,
    day_figures,
    on_hand_by_sku,
    own_movements,
)
from pos.store.reconcile import projection_drift as _drift
from sync import protocol
from sync.engine import SyncEngine
from sync.errors import HQRefused, SyncError
from sync.ports import RejectedEvent
from sync.protocol import DeviceReconciliationResponse, ReconciliationResponse, SalesSummary

Scope = Literal["device", "store"]


@dataclass(frozen=True)
class StockDifference:
    sku: str
    store: int
    """The till's figure (its own net movement, or on-hand in a store-wide comparison)."""
    hq: int


@dataclass(frozen=True)
class OtherTill:
    """Another till of the store as HQ last heard from it (information, not compared)."""

    device_id: str
    last_applied_seq: int
    last_push_at: datetime | None
    pending_reported: int | None
    quarantined: int


@dataclass(frozen=True)
class EodReport:
    business_day: date
    checked_at: datetime
    verified: bool
    sync_ok: bool
    sync_error: str | None
    pending: int
    rejected: tuple[RejectedEvent, ...]
    store: DayFigures
    """This till's own sales of the day."""
    hq: DayFigures | None
    """HQ's figures for what ``scope`` says: this till's sales (device), the store's (store)."""
    last_seq: int
    hq_last_applied_seq: int | None
    stock_checked: int
    stock_differences: tuple[StockDifference, ...]
    other_devices: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())
    """One plain sentence per thing that is pending or different (empty when verified)."""
    scope: Scope = "device"
    store_id: str = ""
    device_id: str = ""
    hq_store: DayFigures | None = None
    """HQ's sales of the whole store (every till), for information."""
    other_tills: tuple[OtherTill, ...] = ()
    store_stock_checked: int | None = None
    """On-hand compared store-wide (a store with one till only); None: not compared."""
    store_stock_differences: tuple[StockDifference, ...] = ()
    unsent_movements: int = 0
    hq_time: datetime | None = None
    """HQ's clock when it answered: other tills' sync times are HQ's, so "how long ago" is
    measured on HQ's clock, whatever this till's clock says."""

    @property
    def sales_match(self) -> bool:
        return self.hq is not None and figures_match(self.store, self.hq)


def figures_match(a: DayFigures, b: DayFigures) -> bool:
    return (a.count, a.total, a.tax_total) == (b.count, b.total, b.tax_total) and _methods(
        a
    ) == _methods(b)


def _methods(f: DayFigures) -> dict[str, tuple[int, int]]:
    return {m: (v.count, v.amount) for m, v in f.by_method.items() if v.count or v.amount}


def _figures(s: SalesSummary) -> DayFigures:
    return DayFigures(
        s.count,
        s.total,
        s.tax_total,
        {m: MethodFigure(t.count, t.amount) for m, t in s.by_method.items()},
    )


def hq_figures(res: ReconciliationResponse) -> DayFigures:
    return _figures(res.sales)


def _compare(mine: dict[str, int], theirs: dict[str, int]) -> tuple[int, list[StockDifference]]:
    checked = 0
    differences: list[StockDifference] = []
    for sku in sorted(set(theirs) | set(mine)):
        a, b = mine.get(sku, 0), theirs.get(sku, 0)
        if a or b:
            checked += 1
        if a != b:
            differences.append(StockDifference(sku, a, b))
    return checked, differences


async def end_of_day(
    engine: SyncEngine, db: DbLike, business_day: date, *, rounds: int = 5
) -> EodReport:
    """Sync (a few rounds, until drained), then compare this till with HQ's view of it."""
    report = await sync_until_drained(engine, rounds=rounds)
    summary = engine.outbox.summary()
    rejected = tuple(engine.outbox.rejected())
    store = day_figures(db, business_day.isoformat())
    moved, unsent = own_movements(db)
    problems: list[str] = []
    if not report.ok:
        problems.append(f"The sync did not finish: {report.error}")
    if summary.pending:
        problems.append(
            f"{summary.pending} event(s) of this till have not reached HQ yet; "
            "run the end of day again once HQ can be reached."
        )
    if unsent:
        problems.append(
            f"{unsent} stock movement(s) of this till have not been sent to HQ yet; "
            "run the end of day again."
        )
    if rejected:
        problems.append(
            f"HQ refused {len(rejected)} event(s) of this till (see the sync screen); "
            "their sales or stock moves are missing at HQ until support fixes them."
        )
    drift = _drift(db)
    if drift:
        problems.append(
            f"The till's stock figures disagree with its own ledger for {len(drift)} SKU(s); "
            "ask support to rebuild them."
        )

    scope: Scope = "device"
    hq: DayFigures | None = None
    hq_store: DayFigures | None = None
    hq_last: int | None = None
    store_id = device_id = ""
    others: list[OtherTill] = []
    differences: list[StockDifference] = []
    store_differences: list[StockDifference] = []
    checked = 0
    store_checked: int | None = None
    hq_time: datetime | None = None
    if report.ok:
        try:
            try:
                pages = await _device_reconciliation(engine, business_day)
            except HQRefused as error:
                if error.status_code != 404:
                    raise
                pages = []  # an HQ from before per-till end of day: ask the old question
                scope = "store"
            if pages:
                first = pages[0]
                store_id, device_id = first.store_id, first.device_id
                hq = _figures(first.sales)
                hq_store = _figures(first.store_sales)
                hq_last = first.last_applied_seq
                hq_time = first.server_time
                others = [
                    OtherTill(
                        d.device_id,
                        d.last_applied_seq,
                        d.last_push_at,
                        d.pending_reported,
                        d.quarantined,
                    )
                    for d in first.devices
                    if d.device_id != first.device_id
                ]
                theirs = {m.sku: m.net for page in pages for m in page.movements}
                checked, differences = _compare(moved, theirs)
                if not others:  # one till: its figures are the store's, so on-hand too
                    old = await _reconciliation(engine, business_day)
                    store_checked, store_differences = _compare(
                        on_hand_by_sku(db), {o.sku: o.on_hand for p in old for o in p.on_hand}
                    )
            else:
                old = await _reconciliation(engine, business_day)
                store_id, device_id = old[0].store_id, old[0].device_id
                hq = hq_figures(old[0])
                hq_store = hq
                hq_last = old[0].last_applied_seq
                hq_time = old[0].server_time
                others = [
                    OtherTill(d.device_id, d.last_applied_seq, None, None, 0)
                    for d in old[0].devices
                    if d.device_id != old[0].device_id
                ]
                checked, differences = _compare(
                    on_hand_by_sku(db), {o.sku: o.on_hand for p in old for o in p.on_hand}
                )
                if others:
                    problems.append(
                        "HQ answers only for the whole store ("
                        + ", ".join(o.device_id for o in others)
                        + " too): this till alone cannot be checked until HQ is updated."
                    )
        except SyncError as error:
            problems.append(f"HQ's figures could not be fetched: {error}")
            hq = None
    if hq is not None:
        if hq_last != summary.last_seq:
            problems.append(
                f"HQ has applied this till's events up to {hq_last}, the till has issued "
                f"{summary.last_seq}."
            )
        if not figures_match(store, hq):
            problems.append(
                f"Sales differ: this till has {store.count} sale(s), "
                f"{format_amount(store.total)} in total; HQ has {hq.count}, "
                f"{format_amount(hq.total)}."
            )
        if differences:
            what = "stock movements" if scope == "device" else "stock"
            problems.append(f"This till's {what} differ from HQ's for {len(differences)} SKU(s).")
        if store_differences:
            problems.append(
                f"The store's on-hand differs from HQ's for {len(store_differences)} SKU(s)."
            )
    verified = not problems and hq is not None
    if report.ok:
        await _tell_hq(
            engine,
            business_day,
            verified,
            scope,
            summary.pending,
            store,
            hq,
            differences + store_differences,
            problems,
        )
    return EodReport(
        business_day=business_day,
        checked_at=engine.clock(),
        verified=verified,
        sync_ok=report.ok,
        sync_error=report.error,
        pending=summary.pending,
        rejected=rejected,
        store=store,
        hq=hq,
        last_seq=summary.last_seq,
        hq_last_applied_seq=hq_last,
        stock_checked=checked,
        stock_differences=tuple(differences),
        other_devices=tuple(o.device_id for o in others),
        problems=tuple(problems),
        scope=scope,
        store_id=store_id,
        device_id=device_id,
        hq_store=hq_store,
        other_tills=tuple(others),
        store_stock_checked=store_checked,
        store_stock_differences=tuple(store_differences),
        unsent_movements=unsent,
        hq_time=hq_time,
    )


async def _device_reconciliation(
    engine: SyncEngine, business_day: date, limit: int = 20000
) -> list[DeviceReconciliationResponse]:
    pages = [await engine.client.device_reconciliation(business_day, limit=limit)]
    while pages[-1].next_after is not None:
        pages.append(
            await engine.client.device_reconciliation(
                business_day, after=pages[-1].next_after, limit=limit
            )
        )
    return pages


async def _reconciliation(
    engine: SyncEngine, business_day: date, limit: int = 5000
) -> list[ReconciliationResponse]:
    pages = [await engine.client.reconciliation(business_day, limit=limit)]
    while pages[-1].next_after is not None:
        pages.append(
            await engine.client.reconciliation(
                business_day, after=pages[-1].next_after, limit=limit
            )
        )
    return pages


def since(then: datetime | None, now: datetime) -> str:
    """How long ago, as a manager says it: "3 h ago", "never"."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def verdict(report: EodReport) -> str:
    """The one line at the top: what was checked and whether it agrees."""
    if report.verified:
        if report.scope == "device" and report.other_tills:
            return "VERIFIED: this till and HQ agree on its sales and stock movements."
        return "VERIFIED: the till and HQ agree on every sale and every SKU."
    return "NOT VERIFIED"


def report_lines(report: EodReport) -> list[str]:
    """The end-of-day report as a manager reads it (the end-of-day screen shows the same).
    Lines fit 76 columns, so the screen shows them whole on an 80-column terminal."""
    who = report.device_id or "this till"
    store = f" of {report.store_id}" if report.store_id else ""
    lines = [f"End of day {report.business_day.isoformat()}, {who}{store}"]
    if report.scope == "device":
        lines.append("Compared: this till's own sales and stock movements with HQ's.")
    else:
        lines.append("Compared: the till with HQ's figures for the whole store (older HQ).")
    s, h = report.store, report.hq
    lines.append(
        f"  Sales       till {s.count:>6}  {format_amount(s.total):>14}"
        + (f"   HQ {h.count:>6}  {format_amount(h.total):>14}" if h else "   HQ  -")
    )
    methods = sorted(set(s.by_method) | set(h.by_method if h else {}))
    for m in methods:
        a = s.by_method.get(m)
        b = h.by_method.get(m) if h else None
        lines.append(
            f"  {m:<11} till {(a.count if a else 0):>6}  {format_amount(a.amount if a else 0):>14}"
            + (
                f"   HQ {(b.count if b else 0):>6}  {format_amount(b.amount if b else 0):>14}"
                if h
                else ""
            )
        )
    if report.scope == "device":
        lines.append(
            f"  Stock moves {report.stock_checked} SKU(s), all this till moved: "
            f"{len(report.stock_differences)} different"
        )
    else:
        lines.append(
            f"  Stock       {report.stock_checked} SKU(s) compared, "
            f"{len(report.stock_differences)} different"
        )
    lines.extend(_differences(report.stock_differences))
    if report.store_stock_checked is not None:
        lines.append(
            f"  On-hand     {report.store_stock_checked} SKU(s) compared store-wide "
            f"(the only till), {len(report.store_stock_differences)} different"
        )
        lines.extend(_differences(report.store_stock_differences))
    for r in report.rejected[:20]:
        lines.append(f"  Refused by HQ: event {r.seq} ({r.type}): {r.reason}"[:76])
    if report.verified:
        lines.append(verdict(report))
    else:
        lines.append("NOT VERIFIED:")
        lines.extend(f"  - {p}" for p in report.problems)
    if report.other_tills:
        lines.append("")
        lines.append(f"Other tills of {report.store_id or 'this store'} (not part of this check):")
        for o in report.other_tills:
            when = since(o.last_push_at, report.hq_time or report.checked_at)
            at = f" ({o.last_push_at:%Y-%m-%d %H:%M} UTC)" if o.last_push_at else ""
            tail = f", {o.pending_reported} waiting then" if o.pending_reported else ""
            held = f", {o.quarantined} refused" if o.quarantined else ""
            lines.append(f"  {o.device_id}: last synced {when}{at}{tail}{held}"[:76])
        if report.hq_store is not None:
            lines.append(
                f"HQ's store-wide totals of the day include them: {report.hq_store.count} sale(s), "
                f"{format_amount(report.hq_store.total)}."
            )
    return lines


def _differences(differences: tuple[StockDifference, ...]) -> list[str]:
    lines = [f"    {d.sku}: till {d.store}, HQ {d.hq}"[:76] for d in differences[:50]]
    if len(differences) > 50:
        lines.append(f"    ... and {len(differences) - 50} more")
    return lines


async def _tell_hq(
    engine: SyncEngine,
    business_day: date,
    verified: bool,
    scope: Scope,
    pending: int,
    store: DayFigures,
    hq: DayFigures | None,
    differences: list[StockDifference],
    problems: list[str],
) -> None:
    """Send the conclusion to HQ for its report; a failure here changes nothing at the till."""
    lines = [f"{d.sku}: till {d.store}, HQ {d.hq}" for d in differences] + problems
    with contextlib.suppress(SyncError):
        await engine.client.send_eod(
            protocol.EodReport(
                business_day=business_day,
                device_time=engine.clock(),
                verified=verified,
                pending_events=pending,
                sales_mismatches=0 if hq is not None and figures_match(store, hq) else 1,
                stock_mismatches=len(differences),
                differences=[line[:500] for line in lines[: protocol.MAX_EOD_DIFFERENCES]],
                scope=scope,
            )
        )
