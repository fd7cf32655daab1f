"""What the sync engine needs from the store it runs in, as Protocols.

``sync`` never imports ``pos``: the store implements these ports over its own SQLite file
(``pos.store.sync_state``) and hands them to :class:`sync.engine.SyncEngine`. Every method that
writes is one local transaction of its own, so whatever the engine is doing when the process
dies, the store is left either before or after that step, never in between."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sync.protocol import PushResult, StreamPage


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One outbox row waiting for HQ, exactly as it was committed. ``payload`` is the canonical
    JSON text the hash was taken over (sent as is, never re-encoded by the store)."""

    seq: int
    event_id: str
    device_id: str
    type: str
    schema_version: int
    occurred_at: str  # ISO-8601 with offset, the device clock
    payload: str
    payload_hash: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class MarkOutcome:
    """What marking one push response did to the outbox."""

    acked: int = 0
    rejected: int = 0
    superseded: int = 0
    rewound: int = 0
    """Events HQ no longer holds (restored from a backup) put back to pending."""
    missing: tuple[int, int] | None = None
    """(first, last) seqs HQ lost that this till has already pruned: they cannot be re-sent."""


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    pending: int
    oldest_pending_at: datetime | None
    rejected: int
    superseded: int
    last_seq: int
    """Highest seq this device has issued (0: none yet)."""
    highest_acked: int
    """Highest seq HQ has answered for (any state but pending)."""
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    seq: int
    event_id: str
    type: str
    occurred_at: str
    reason: str
    payload: str
    """The event's payload (canonical JSON): the screen picks what a manager recognises."""


class OutboxPort(Protocol):
    """The store's outbox as the engine sees it."""

    def before_push(self, now: datetime) -> int:
        """Make sure every local fact HQ must hear about has its outbox event (store-specific;
        returns the number of events added)."""
        ...

    def pending_batch(self, limit: int, max_bytes: int) -> list[PendingEvent]:
        """The oldest pending events in seq order: at most ``limit`` of them, and no more than
        ``max_bytes`` of payload (always at least one event when any is pending)."""
        ...

    def record_results(
        self, results: Sequence[PushResult], last_applied_seq: int, now: datetime
    ) -> MarkOutcome:
        """Mark HQ's answers AND, when ``last_applied_seq`` is below what the store holds as
        answered (HQ restored from a backup), put those events back to pending: one
        transaction."""
        ...

    def record_failure(self, seqs: Sequence[int], now: datetime, next_attempt_at: datetime) -> None:
        """A push of these events failed for a transient reason: count the attempt."""
        ...

    def summary(self) -> OutboxSummary: ...

    def rejected(self, limit: int = 200) -> list[RejectedEvent]: ...

    def prune(self, acked_before: datetime) -> int:
        """Forget events HQ acknowledged before the given time (retention)."""
        ...


SnapshotProgress = Callable[[str, int], None]
"""progress(stream, rows so far)"""


class PullPort(Protocol):
    """The store's copies of HQ-owned streams and their cursors."""

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams this store keeps (the engine pulls only these)."""
        ...

    def cursors(self, streams: Iterable[str]) -> dict[str, int | None]:
        """Each stream's cursor; None for a stream the till has never loaded (it starts
        from HQ's snapshot, not from change 1)."""
        ...

    def anchors(self, streams: Iterable[str]) -> dict[str, str | None]:
        """Each stream's anchor, stored with its cursor (the page's or snapshot's ``anchor``:
        which of HQ's histories the cursor was taken on); None when none is known."""
        ...

    def apply_pages(self, pages: Sequence[StreamPage]) -> int:
        """Apply the changes of these pages and store their cursors (each with its page's
        anchor), all in one transaction. Changes at or below a stream's stored cursor are
        skipped and a cursor never moves backwards here, so applying a page twice changes
        nothing. Returns changes applied."""
        ...

    def spool_path(self, stream: str) -> Path:
        """Where a stream's snapshot is downloaded to (kept across restarts, so an
        interrupted download resumes)."""
        ...

    def load_snapshots(
        self, spools: Mapping[str, Path], progress: SnapshotProgress | None = None
    ) -> dict[str, int]:
        """Replace these streams' local rows with the complete snapshot files (header, rows,
        end line) and set each stream's cursor (and anchor) to its snapshot's, in one
        transaction; the store's own data and outbox are untouched. Returns rows loaded per
        stream."""
        ...


@dataclass(frozen=True, slots=True)
class Contact:
    """The last exchange with HQ, as the status bar shows it."""

    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    online: bool = False
    clock_offset_s: float | None = None
    """Device clock minus HQ clock at the last contact."""
    last_error: str | None = None


class JournalPort(Protocol):
    """Where the engine keeps what it learnt about the link (survives restarts)."""

    def note_contact(
        self,
        now: datetime,
        *,
        ok: bool,
        clock_offset_s: float | None = None,
        error: str | None = None,
    ) -> None: ...

    def contact(self) -> Contact: ...
