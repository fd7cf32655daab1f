"""End of day: sync until the outbox is drained, then compare the till with HQ.

Compared: the business day's sales (count, total, tax) and payments per method, and on-hand of
every SKU with a movement (HQ's ledger against the till's). The report is "verified" only when
the sync finished, nothing is pending or refused, HQ has applied every event of this till, and
every figure matches; otherwise it says, in plain words, what is pending or different."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import date, datetime

from pos.domain.money import format_amount
from pos.services.sync import sync_until_drained
from pos.store._conn import DbLike
from pos.store.reconcile import DayFigures, MethodFigure, day_figures, on_hand_by_sku
from pos.store.reconcile import projection_drift as _drift
from sync import protocol
from sync.engine import SyncEngine
from sync.errors import SyncError
from sync.ports import RejectedEvent
from sync.protocol import ReconciliationResponse


@dataclass(frozen=True)
class StockDifference:
    sku: str
    store: int
    hq: int


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
    hq: DayFigures | None
    last_seq: int
    hq_last_applied_seq: int | None
    stock_checked: int
    stock_differences: tuple[StockDifference, ...]
    other_devices: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())
    """One plain sentence per thing that is pending or different (empty when verified)."""

    @property
    def sales_match(self) -> bool:
        return self.hq is not None and figures_match(self.store, self.hq)


def figures_match(a: DayFigures, b: DayFigures) -> bool:
    return (a.count, a.total, a.tax_total) == (b.count, b.total, b.tax_total) and _methods(
        a
    ) == _methods(b)


def _methods(f: DayFigures) -> dict[str, tuple[int, int]]:
    return {m: (v.count, v.amount) for m, v in f.by_method.items() if v.count or v.amount}


def hq_figures(res: ReconciliationResponse) -> DayFigures:
    return DayFigures(
        res.sales.count,
        res.sales.total,
        res.sales.tax_total,
        {m: MethodFigure(t.count, t.amount) for m, t in res.sales.by_method.items()},
    )


async def end_of_day(
    engine: SyncEngine, db: DbLike, business_day: date, *, rounds: int = 5
) -> EodReport:
    """Sync (a few rounds, until drained), then compare with HQ's view of this store."""
    report = await sync_until_drained(engine, rounds=rounds)
    summary = engine.outbox.summary()
    rejected = tuple(engine.outbox.rejected())
    store = day_figures(db, business_day.isoformat())
    problems: list[str] = []
    if not report.ok:
        problems.append(f"The sync did not finish: {report.error}")
    if summary.pending:
        problems.append(
            f"{summary.pending} event(s) of this till have not reached HQ yet; "
            "run the end of day again once HQ can be reached."
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

    hq: DayFigures | None = None
    hq_last: int | None = None
    others: tuple[str, ...] = ()
    differences: list[StockDifference] = []
    checked = 0
    if report.ok:
        try:
            pages = await _reconciliation(engine, business_day)
        except SyncError as error:
            problems.append(f"HQ's figures could not be fetched: {error}")
            pages = []
        if pages:
            first = pages[0]
            hq = hq_figures(first)
            hq_last = first.last_applied_seq
            others = tuple(d.device_id for d in first.devices if d.device_id != first.device_id)
            theirs = {o.sku: o.on_hand for page in pages for o in page.on_hand}
            mine = on_hand_by_sku(db)
            for sku in sorted(set(theirs) | set(mine)):
                a, b = mine.get(sku, 0), theirs.get(sku, 0)
                if a or b:
                    checked += 1
                if a != b:
                    differences.append(StockDifference(sku, a, b))
            if hq_last != summary.last_seq:
                problems.append(
                    f"HQ has applied this till's events up to {hq_last}, the till has issued "
                    f"{summary.last_seq}."
                )
            if others:
                problems.append(
                    "HQ's figures cover every till of this store ("
                    + ", ".join(others)
                    + " too): this till alone cannot be checked against them."
                )
            if not figures_match(store, hq):
                problems.append(
                    f"Sales differ: the till has {store.count} sale(s), "
                    f"{format_amount(store.total)} in total; HQ has {hq.count}, "
                    f"{format_amount(hq.total)}."
                )
            if differences:
                problems.append(f"Stock differs for {len(differences)} SKU(s).")
    verified = not problems and hq is not None
    if report.ok:
        await _tell_hq(
            engine, business_day, verified, summary.pending, store, hq, differences, problems
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
        other_devices=others,
        problems=tuple(problems),
    )


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


def report_lines(report: EodReport) -> list[str]:
    """The end-of-day report as a manager reads it (the end-of-day screen shows the same)."""
    lines = [f"End of day {report.business_day.isoformat()}"]
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
    lines.append(
        f"  Stock       {report.stock_checked} SKU(s) compared, "
        f"{len(report.stock_differences)} different"
    )
    for d in report.stock_differences[:50]:
        lines.append(f"    {d.sku}: till {d.store}, HQ {d.hq}")
    if len(report.stock_differences) > 50:
        lines.append(f"    ... and {len(report.stock_differences) - 50} more")
    for r in report.rejected[:20]:
        lines.append(f"  Refused by HQ: event {r.seq} ({r.type}): {r.reason}")
    if report.verified:
        lines.append("VERIFIED: the till and HQ agree on every sale and every SKU.")
    else:
        lines.append("NOT VERIFIED:")
        lines.extend(f"  - {p}" for p in report.problems)
    return lines


async def _tell_hq(
    engine: SyncEngine,
    business_day: date,
    verified: bool,
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
            )
        )
