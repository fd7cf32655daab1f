"""The sync engine: pull HQ's changes, then push the till's events, exactly once, never blocked.

One :meth:`SyncEngine.sync_once` is one full round: pull every stream until HQ has nothing more
(downloading a stream's snapshot when the till has never had it or when HQ answers ``reset``),
then push the outbox in seq order until it is empty. The engine holds no state of its own that
matters: cursors, outbox states, attempts and the last contact live in the store's SQLite file
behind the ports (:mod:`sync.ports`), each step in one local transaction, so the process can be
killed at any point and the next round carries on from what was committed.

Why pull first: a till that comes back after a long time learns of HQ's changes (a product
retired, an order taken away) before it tells HQ what it did (DESIGN.md, "pull first").

Exactly once: every event goes in ``seq`` order; HQ moves ``last_applied_seq`` with the effects
in one transaction, so a response lost after HQ committed is answered ``duplicate`` next time.
HQ's answers are marked in one local transaction. A ``last_applied_seq`` below what the till
holds as answered means HQ was restored from a backup: those events go back to pending and are
sent again (they are kept for ``retention`` after HQ acknowledged them).

Never blocked: HQ quarantines a bad event and answers ``rejected``; the till marks it and goes
on. A transient failure (network, 5xx, 429) is retried a few times inside the call (stamina),
then counted on the head events (attempts, next attempt time, exponential backoff with jitter)
and the round ends; the till keeps selling."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sync.client import HQClient
from sync.errors import HQLostEvents, HQRefused, HQUnavailable, SyncError
from sync.ports import JournalPort, OutboxPort, PendingEvent, PullPort
from sync.protocol import (
    DEFAULT_PULL_LIMIT,
    MAX_BODY_BYTES,
    MAX_PUSH_BATCH,
    STREAMS,
    PullRequest,
    PushResponse,
)

Clock = Callable[[], datetime]
Phase = Literal["download", "load"]
SnapshotProgressFn = Callable[[str, Phase, int], None]
"""progress(stream, phase, rows so far)"""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = MAX_PUSH_BATCH
    max_batch_bytes: int = (MAX_BODY_BYTES * 3) // 4  # room for the envelope fields
    pull_limit: int = DEFAULT_PULL_LIMIT
    streams: tuple[str, ...] | None = None
    """Streams to pull; None: every stream the store keeps (PullPort.streams)."""
    retention: timedelta = timedelta(days=30)
    prune_every: timedelta = timedelta(hours=6)
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    backoff_jitter_s: float = 1.0
    max_rounds: int = 100_000
    app_version: str = "pos/1"


def backoff_delay(attempts: int, config: EngineConfig) -> float:
    """Seconds to wait after the ``attempts``-th failed try: exponential, capped, plus jitter
    (so a thousand tills that lost HQ at once do not all come back in the same second)."""
    if attempts <= 0:
        return 0.0
    base = min(config.backoff_max_s, config.backoff_initial_s * 2.0 ** min(attempts - 1, 30))
    jitter = random.uniform(0.0, config.backoff_jitter_s) if config.backoff_jitter_s else 0.0
    return min(config.backoff_max_s, base + jitter)


@dataclass
class SyncReport:
    """What one round did."""

    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    retryable: bool = True
    pulled: int = 0
    snapshots: dict[str, int] = field(default_factory=dict)
    pushed: int = 0
    requests: int = 0
    acked: int = 0
    rejected: int = 0
    superseded: int = 0
    rewound: int = 0
    pending: int = 0
    clock_offset_s: float | None = None


@dataclass(frozen=True)
class EngineStatus:
    """The till's view of its link to HQ (the status bar and the sync screen show it)."""

    online: bool
    pending: int
    oldest_pending_at: datetime | None
    rejected: int
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    clock_offset_s: float | None
    last_error: str | None
    next_attempt_at: datetime | None
    last_seq: int


class SyncEngine:
    def __init__(
        self,
        client: HQClient,
        outbox: OutboxPort,
        pull: PullPort,
        journal: JournalPort,
        *,
        clock: Clock = utc_now,
        config: EngineConfig | None = None,
        on_snapshot_progress: SnapshotProgressFn | None = None,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.puller = pull
        self.journal = journal
        self.clock = clock
        self.config = config or EngineConfig()
        self.on_snapshot_progress = on_snapshot_progress
        self._last_prune: datetime | None = None
        self._offset: float | None = None

    # -- one round -----------------------------------------------------------------------------

    async def sync_once(self, *, pull: bool = True, push: bool = True) -> SyncReport:
        """Pull then push. Never raises for a failure of HQ or the network: the report says
        what happened (``ok``, ``error``); store errors and bugs propagate."""
        report = SyncReport(started_at=self.clock())
        before = self.client.requests
        self._offset = None
        try:
            if pull:
                await self.pull(report)
            if push:
                await self.push(report)
        except HQUnavailable as error:
            report.error = str(error)
        except HQRefused as error:
            report.error = str(error)
            report.retryable = False
        except SyncError as error:
            report.error = str(error)
            report.retryable = False
        else:
            report.ok = True
        report.requests = self.client.requests - before
        report.clock_offset_s = self._offset
        now = self.clock()
        report.finished_at = now
        self.journal.note_contact(
            now, ok=report.ok, clock_offset_s=self._offset, error=report.error
        )
        report.pending = self.outbox.summary().pending
        if report.ok:
            self._maybe_prune(now)
        return report

    # -- push ----------------------------------------------------------------------------------

    async def push(self, report: SyncReport | None = None) -> SyncReport:
        """Send pending events until none is left (or HQ fails)."""
        report = report or SyncReport(started_at=self.clock())
        cfg = self.config
        self.outbox.before_push(self.clock())
        probed = False
        for _ in range(cfg.max_rounds):
            batch = self.outbox.pending_batch(cfg.batch_size, cfg.max_batch_bytes)
            if not batch and probed:
                return report
            # an empty push still tells us where HQ stands (a restore shows as a lower
            # last_applied_seq) and what our clock offset is
            probed = True
            res = await self._push_batch(batch)
            outcome = self.outbox.record_results(res.results, res.last_applied_seq, self.clock())
            report.pushed += len(batch)
            report.acked += outcome.acked
            report.rejected += outcome.rejected
            report.superseded += outcome.superseded
            report.rewound += outcome.rewound
            if outcome.missing is not None:
                first, last = outcome.missing
                raise HQLostEvents(
                    f"HQ no longer has events {first}-{last} of this till and the till has "
                    "already deleted them after their retention. Call support: HQ must be "
                    "restored from a newer backup."
                )
            if not batch and not outcome.rewound:
                return report
            if batch and not res.results and not outcome.rewound:
                # HQ took nothing and nothing was rewound: a gap this till cannot fill
                raise HQLostEvents(
                    f"HQ expects event {res.last_applied_seq + 1} of this till next but the "
                    f"till's next pending event is {batch[0].seq}. Call support."
                )
        raise SyncError("push did not finish after the maximum number of rounds")

    async def _push_batch(self, batch: Sequence[PendingEvent]) -> PushResponse:
        summary = self.outbox.summary()
        body = push_body(
            batch,
            device_time=self.clock(),
            pending=summary.pending,
            oldest_pending_at=summary.oldest_pending_at,
            app_version=self.config.app_version,
        )
        try:
            res = await self.client.push(body)
        except HQUnavailable:
            if batch:
                now = self.clock()
                attempts = max(e.attempts for e in batch) + 1
                delay = backoff_delay(attempts, self.config)
                self.outbox.record_failure(
                    [e.seq for e in batch], now, now + timedelta(seconds=delay)
                )
            raise
        self._offset = res.clock_offset_s
        return res

    # -- pull ----------------------------------------------------------------------------------

    async def pull(self, report: SyncReport | None = None) -> SyncReport:
        """Pull every stream until HQ has nothing more. A stream the till has never had (or
        whose cursor HQ no longer serves) comes as a snapshot."""
        report = report or SyncReport(started_at=self.clock())
        cfg = self.config
        streams = [s for s in (cfg.streams or self.puller.streams) if s in STREAMS]
        for _ in range(cfg.max_rounds):
            cursors = self.puller.cursors(streams)
            fresh = [s for s in streams if cursors.get(s) is None]
            if fresh:
                report.snapshots.update(await self.snapshots(fresh))
                continue
            anchors = self.puller.anchors(streams)
            req = PullRequest(
                device_time=self.clock(),
                cursors={s: int(cursors[s] or 0) for s in streams},  # type: ignore[misc]
                # HQ checks each cursor is still on its history (a restore resets the stream)
                anchors={s: a for s, a in anchors.items() if a is not None},  # type: ignore[misc]
                limit=cfg.pull_limit,
            )
            res = await self.client.pull(req)
            self._offset = res.clock_offset_s
            pages = [pg for pg in res.pages.values() if pg.reset is None]
            resets = [pg.stream for pg in res.pages.values() if pg.reset is not None]
            report.pulled += self.puller.apply_pages(pages)
            if resets:
                report.snapshots.update(await self.snapshots(resets))
                continue
            if not res.has_more:
                return report
        raise SyncError("pull did not finish after the maximum number of rounds")

    async def snapshots(self, streams: Sequence[str]) -> dict[str, int]:
        """Download these streams' snapshots (in parallel, resuming partial files) and load
        them, replacing those streams' rows and cursors in one local transaction."""
        spools = {s: self.puller.spool_path(s) for s in streams}
        progress = self.on_snapshot_progress

        def downloaded(stream: str) -> Callable[[int], None] | None:
            if progress is None:
                return None
            return lambda rows: progress(stream, "download", rows)

        try:
            async with asyncio.TaskGroup() as tg:
                for s in streams:
                    tg.create_task(self.client.download_snapshot(s, spools[s], downloaded(s)))
        except BaseExceptionGroup as group:
            # the caller handles one error: a refusal first, then any other sync error
            for kind in (HQRefused, SyncError):
                for error in group.exceptions:
                    if isinstance(error, kind):
                        raise error from None
            raise

        def loading(stream: str, rows: int) -> None:
            if progress is not None:
                progress(stream, "load", rows)

        return self.puller.load_snapshots(spools, loading)

    # -- status --------------------------------------------------------------------------------

    def status(self) -> EngineStatus:
        summary = self.outbox.summary()
        contact = self.journal.contact()
        return EngineStatus(
            online=contact.online,
            pending=summary.pending,
            oldest_pending_at=summary.oldest_pending_at,
            rejected=summary.rejected,
            last_success_at=contact.last_success_at,
            last_attempt_at=contact.last_attempt_at,
            clock_offset_s=contact.clock_offset_s,
            last_error=contact.last_error,
            next_attempt_at=summary.next_attempt_at,
            last_seq=summary.last_seq,
        )

    def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < self.config.prune_every:
            return
        self._last_prune = now
        self.outbox.prune(now - self.config.retention)


def push_body(
    batch: Sequence[PendingEvent],
    *,
    device_time: datetime,
    pending: int | None = None,
    oldest_pending_at: datetime | None = None,
    app_version: str | None = None,
) -> bytes:
    """A :class:`~sync.protocol.PushRequest` as JSON bytes. Each payload is spliced in as the
    exact canonical text the outbox committed (and hashed), never decoded and re-encoded."""
    dumps = json.dumps
    events = ",".join(
        f'{{"event_id":{dumps(e.event_id)},"device_id":{dumps(e.device_id)},"seq":{int(e.seq)},'
        f'"type":{dumps(e.type)},"schema_version":{int(e.schema_version)},'
        f'"occurred_at":{dumps(e.occurred_at)},"payload":{e.payload},'
        f'"payload_hash":{dumps(e.payload_hash)}}}'
        for e in batch
    )
    head = dumps(
        {
            "device_time": device_time.isoformat(),
            "pending": pending,
            "oldest_pending_at": oldest_pending_at.isoformat() if oldest_pending_at else None,
            "app_version": app_version,
        },
        ensure_ascii=False,
    )
    return ('{"batch":[' + events + "]," + head[1:]).encode("utf-8")
