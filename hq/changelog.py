"""The change log of HQ-owned streams (catalog, prices, config, orders), in commit order.

Why a lock and not a sequence: a database sequence hands out numbers when a row is written, not
when its transaction commits. Writer A can take 100, writer B take 101 and commit first; a store
that pulls in between stores cursor 101 and never sees 100 (the lost-update of cursor-based
sync). Here every transaction that changes a stream first locks that stream's row in
``stream_heads`` (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the ``BEGIN IMMEDIATE``
write transaction already holds the database), then numbers its changes ``head+1, head+2, ...``
and moves ``head`` in the same transaction. The next writer of that stream waits for the lock,
so it can only number its changes after the previous writer committed: numbers are handed out
in commit order and a reader that sees seq N has every seq below N too. The cost is that writers
of one stream run one at a time, which suits admin and import writes (a few per second, large
batches). A reader reads ``head`` first and serves only changes up to it.

Every change of one transaction carries ``tx`` = the first seq of that transaction in the stream,
so pages can end on transaction boundaries. Compaction deletes whole old transactions and moves
``compacted_through``; a cursor below it gets a reset to the stream's snapshot.

**Partitioned streams** (``orders``): every change belongs to one store (``changes.store_id``)
and a store reads only its own, so commit order only has to hold within a store's partition.
On PostgreSQL a writer that knows which stores it writes takes the stream row ``FOR SHARE`` and
then each of those stores' rows in ``stream_partitions`` (created on demand), in sorted order,
with one statement; its numbers come from the sequence ``change_numbers``, drawn after those
locks. A later writer of the same store waits for the partition lock, so it draws larger
numbers and commits later: within a partition numbers still follow commits, while writers of
different stores run side by side. A partition's head is the last number its rows were written
with (``order_feed.seq``, written with each change). A writer that cannot name
its stores up front (a store's order events, the tick, compaction) takes the stream row ``FOR
UPDATE`` as before, which waits for every partition writer and keeps new ones out; it also
moves the stream row's head to the sequence's last number, a watermark every change below which
is committed. A store's head is then max(stream head, its partition's head): its pages and
snapshot stop there, and an idle store's cursor still moves with the watermark (compaction does
not reset it). SQLite has one writer at a time, so there every writer simply numbers from the
stream row.

Why anchors: a cursor is a number, and after HQ is restored from a backup (its log ending at H)
and writes again, the numbers H+1, H+2, ... name other changes than the ones a till pulled
before the restore. A till whose cursor C was past H would then ask for changes after C and
silently miss H+1..C. So every change also carries ``tx_uid``, a random id of the write
transaction that made it (a restored HQ cannot make the same one again); a page and a snapshot
give, with their cursor, its anchor (the ``tx_uid`` of the change at the cursor's seq, whichever
store's partition that change belongs to), the till stores it beside the cursor and sends it
back, and :func:`pull_page` answers a ``history_changed`` reset when the change at that seq is
no longer the one the anchor names. A cursor that is exactly ``compacted_through`` is checked
against ``stream_heads.compacted_uid``, which compaction keeps for it. This needs no step from
an operator after a restore: the backup holds the ids of the changes it has, and every change
written after the restore has a new one. (On PostgreSQL an idle store's orders cursor may be
the watermark, a number no change carries: its anchor is None and that cursor is not checked.)"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql

from hq.db import Database, changes, order_feed, stream_heads, stream_partitions, sync_log, utcnow
from sync.protocol import SNAPSHOT_PATH, STREAMS, Change, Reset, StreamPage


def row_json(row: dict[str, Any]) -> str:
    """How a row is stored as text (change log, snapshots): compact, UTF-8 kept."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


PARTITIONED = frozenset({"orders"})
"""Streams whose changes each belong to one store (see the module docstring)."""

_WATERMARK = "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_numbers)"
_SMALL = 64  # rows below which a plain INSERT (one round trip) beats COPY


@dataclass
class ChangeWriter:
    """Collects the changes of one write transaction; :meth:`flush` numbers and stores them.

    Call :meth:`lock` (or :meth:`share` and then :meth:`lock_partitions`) for every stream the
    transaction will touch BEFORE changing data rows, so that writers always take locks in the
    same order (stream rows in sorted order, then partitions in sorted order) and cannot
    deadlock."""

    db: Database
    conn: Connection
    now: datetime = field(default_factory=utcnow)
    uid: int = field(default_factory=lambda: secrets.randbits(63))
    """``tx_uid`` of the changes this writer stores (the anchor of cursors, see above)."""
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _heads: dict[str, int] = field(default_factory=dict)
    _shared: dict[str, set[str]] = field(default_factory=dict)
    _reserved: dict[str, list[int]] = field(default_factory=dict)

    def lock(self, *streams: str) -> None:
        for stream in sorted(streams):  # one global order of stream locks
            if stream in self._heads:
                continue
            if stream not in STREAMS:
                raise ValueError(f"unknown stream {stream!r}")
            if stream in self._shared:
                raise RuntimeError(f"stream {stream!r} is held shared: no upgrade (deadlock)")
            stmt = self.db.lock_rows(
                select(stream_heads.c.head).where(stream_heads.c.stream == stream)
            )
            self._heads[stream] = int(self.conn.execute(stmt).scalar_one())
            self._pending[stream] = []

    def share(self, stream: str) -> None:
        """Lock a partitioned stream for writing only the partitions named later with
        :meth:`lock_partitions` (on SQLite, where writers never overlap: the whole stream)."""
        if stream not in PARTITIONED:
            raise ValueError(f"stream {stream!r} is not partitioned")
        if stream in self._heads or stream in self._shared:
            return
        if self.db.is_sqlite:
            self.lock(stream)
            return
        self.conn.execute(
            select(stream_heads.c.head)
            .where(stream_heads.c.stream == stream)
            .with_for_update(read=True)
        )
        self._shared[stream] = set()
        self._pending[stream] = []

    def lock_partitions(self, stream: str, partitions: Iterable[str]) -> None:
        """Lock these partitions of a stream held with :meth:`share` (creating their head
        rows), in sorted order, in one statement. Partitions asked for in a later call must
        sort after those already held, or two writers could wait for each other."""
        if stream in self._heads:
            return  # the whole stream is held
        held = self._shared.get(stream)
        if held is None:
            raise RuntimeError(f"share stream {stream!r} before locking its partitions")
        new = sorted(set(partitions) - held)
        if not new:
            return
        if held and new[0] < max(held):
            raise RuntimeError("partitions must be locked in sorted order: ask for all at once")
        ins = postgresql.insert(stream_partitions).values(
            [{"stream": stream, "partition": part} for part in new]
        )
        # a no-op update: it locks the existing row (rows are visited in the order given)
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["stream", "partition"],
                set_={"partition": ins.excluded.partition},
            )
        )
        held.update(new)

    def reserve(self, stream: str, seqs: Iterable[int]) -> None:
        """Numbers the caller drew from ``change_numbers`` after :meth:`lock_partitions` (in a
        statement it had to run anyway); :meth:`flush` uses them before drawing more."""
        self._reserved.setdefault(stream, []).extend(seqs)

    def head(self, stream: str) -> int:
        """The stream's head as locked (changes collected since are numbered after it)."""
        return self._heads[stream]

    def upsert(
        self, stream: str, key: str, row: dict[str, Any], store_id: str | None = None
    ) -> dict[str, Any]:
        """Collect an upsert; the returned item gets its ``seq`` at :meth:`flush`."""
        return self._add(stream, "upsert", key, row_json(row), store_id)

    def delete(self, stream: str, key: str, store_id: str | None = None) -> dict[str, Any]:
        return self._add(stream, "delete", key, None, store_id)

    def _add(
        self, stream: str, op: str, key: str, row: str | None, store_id: str | None
    ) -> dict[str, Any]:
        if stream not in self._pending:
            raise RuntimeError(f"lock stream {stream!r} before changing it")
        if stream in PARTITIONED and store_id is None:
            raise ValueError(f"every change of stream {stream!r} belongs to one store")
        held = self._shared.get(stream)
        if held is not None and store_id not in held:
            raise RuntimeError(f"lock partition {store_id!r} of {stream!r} before changing it")
        item = {"op": op, "key": key, "row": row, "store_id": store_id}
        self._pending[stream].append(item)
        return item

    def flush(self) -> dict[str, int]:
        """Number and insert the collected changes; returns the new head per stream held
        whole (not for partitioned streams on PostgreSQL, whose head is the watermark)."""
        for stream, items in self._pending.items():
            numbered = stream in PARTITIONED and not self.db.is_sqlite
            if numbered:
                self._flush_numbered(stream, items)
                continue
            if not items:
                continue
            head = self._heads[stream]
            tx = head + 1
            rows = []
            for i, item in enumerate(items, start=1):
                item["seq"] = head + i
                rows.append(
                    {
                        "stream": stream,
                        "seq": head + i,
                        "tx": tx,
                        "committed_at": self.now,
                        "tx_uid": self.uid,
                        **item,
                    }
                )
            self._insert(rows)
            head += len(items)
            self.conn.execute(
                update(stream_heads).where(stream_heads.c.stream == stream).values(head=head)
            )
            self._heads[stream] = head
            items.clear()
        return dict(self._heads)

    def draw(self) -> None:
        """Draw the numbers :meth:`flush` will need (PostgreSQL, partitioned streams), so that
        flush itself reads no result (it may run in a pipeline, see Database.batched)."""
        if self.db.is_sqlite:
            return
        for stream, items in self._pending.items():
            have = self._reserved.setdefault(stream, [])
            if stream in PARTITIONED and len(have) < len(items):
                have += self.conn.execute(
                    text("SELECT nextval('change_numbers') FROM generate_series(1, :n)"),
                    {"n": len(items) - len(have)},
                ).scalars()

    def _flush_numbered(self, stream: str, items: list[dict[str, Any]]) -> None:
        if items:
            self.draw()
            seqs = sorted(self._reserved.pop(stream))[: len(items)]
            rows = []
            for seq, item in zip(seqs, items, strict=True):
                item["seq"] = seq
                rows.append(
                    {
                        "stream": stream,
                        "seq": seq,
                        "tx": seqs[0],
                        "committed_at": self.now,
                        "tx_uid": self.uid,
                        **item,
                    }
                )
            self._insert(rows)
            items.clear()
        if stream in self._heads:
            # held whole: no partition writer is between its number and its commit, so every
            # number handed out so far is committed or gone: the watermark moves to the last
            # (no result read: this may run in a pipeline, see Database.batched)
            self.conn.execute(
                text(
                    f"UPDATE stream_heads SET head = GREATEST(head, {_WATERMARK}) WHERE stream = :s"
                ),
                {"s": stream},
            )

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if len(rows) < _SMALL:
            self.conn.execute(changes.insert(), rows)
        else:
            self.db.bulk_insert(self.conn, changes, rows)


def advance(db: Database) -> None:
    """Move the watermark of the partitioned streams (``hq serve``'s tick does, so that the
    cursor of a store without new changes keeps up and compaction does not reset it)."""
    if db.is_sqlite:
        return
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock(*PARTITIONED)
        writer.flush()


def heads(conn: Connection) -> dict[str, tuple[int, int]]:
    """stream -> (head, compacted_through); on PostgreSQL a partitioned stream's head is its
    watermark (a store's own head: :func:`stream_head`)."""
    return {
        r.stream: (int(r.head), int(r.compacted_through))
        for r in conn.execute(select(stream_heads))
    }


def stream_head(conn: Connection, stream: str, store_id: str) -> tuple[int, int]:
    """(head, compacted_through) of a stream as one store reads it: for a partitioned stream,
    the stream's watermark or the head of the store's partition, whichever is higher."""
    part = (
        select(func.max(order_feed.c.seq)).where(order_feed.c.store_id == store_id)
        if stream == "orders"
        else select(literal(None))
    ).scalar_subquery()
    head, horizon, own = conn.execute(
        select(stream_heads.c.head, stream_heads.c.compacted_through, part).where(
            stream_heads.c.stream == stream
        )
    ).one()
    return max(int(head), int(own or 0)), int(horizon)


def anchor_text(uid: int | None) -> str | None:
    """The anchor as it travels: the ``tx_uid`` in hex (None for a change without one)."""
    return None if uid is None else f"{uid:016x}"


def anchor_at(conn: Connection, stream: str, seq: int) -> str | None:
    """The anchor of cursor ``seq`` of ``stream``: the ``tx_uid`` of the change numbered
    ``seq``, in whatever store's partition it is (a page for one store may end on a change
    of another store's). At the horizon, where compaction deleted that change, the id it kept;
    None for cursor 0 (names no change) or a change written before HQ kept ids."""
    if seq <= 0:
        return None
    found = conn.execute(
        select(changes.c.tx_uid).where(changes.c.stream == stream, changes.c.seq == seq)
    ).first()
    if found is not None:
        return anchor_text(found.tx_uid)
    kept = conn.execute(
        select(stream_heads.c.compacted_uid).where(
            stream_heads.c.stream == stream, stream_heads.c.compacted_through == seq
        )
    ).first()
    return anchor_text(kept.compacted_uid) if kept is not None else None


def _reset(stream: str, cursor: int, reason: str, horizon: int) -> StreamPage:
    return StreamPage(
        stream=stream,  # type: ignore[arg-type]
        cursor=cursor,
        reset=Reset(
            stream=stream,  # type: ignore[arg-type]
            snapshot_path=f"{SNAPSHOT_PATH}/{stream}",
            reason=reason,
            horizon=horizon,
        ),
    )


def pull_page(
    conn: Connection,
    stream: str,
    cursor: int,
    limit: int,
    store_id: str,
    anchor: str | None = None,
) -> StreamPage:
    """The next page of ``stream`` after ``cursor`` for ``store_id``: at most ``limit``
    changes, more only to finish the last transaction (a page never ends inside one), with
    the anchor of its new cursor.

    ``anchor`` is what the store keeps beside ``cursor``. None (cursor 0, a till that never
    got one, an older till) skips the history check: such a till is served as before."""
    head, horizon = stream_head(conn, stream, store_id)
    if cursor < horizon:  # those changes are gone
        return _reset(stream, cursor, "cursor_expired", horizon)
    if cursor > head:
        # HQ was restored from a backup older than the store's cursor, so the store holds
        # changes HQ no longer knows
        return _reset(stream, cursor, "cursor_ahead_of_hq", horizon)
    if anchor is not None and cursor > 0 and anchor_at(conn, stream, cursor) != anchor:
        # HQ was restored from such a backup AND has since written past the store's cursor:
        # the number is valid again but names other changes than the ones the store holds
        return _reset(stream, cursor, "history_changed", horizon)
    visible = or_(changes.c.store_id.is_(None), changes.c.store_id == store_id)
    base = select(changes.c.seq, changes.c.tx, changes.c.op, changes.c.key, changes.c.row).where(
        changes.c.stream == stream, changes.c.seq <= head, visible
    )
    rows = list(
        conn.execute(base.where(changes.c.seq > cursor).order_by(changes.c.seq).limit(limit + 1))
    )
    has_more = len(rows) > limit
    if has_more:
        rows = rows[:limit]
        last = rows[-1]
        rest = conn.execute(
            base.where(changes.c.tx == last.tx, changes.c.seq > last.seq).order_by(changes.c.seq)
        )
        rows.extend(rest)
        # anything left after the finished transaction?
        has_more = (
            conn.execute(
                select(changes.c.seq)
                .where(changes.c.stream == stream, changes.c.seq > rows[-1].seq)
                .where(changes.c.seq <= head, visible)
                .limit(1)
            ).first()
            is not None
        )
    new_cursor = int(rows[-1].seq) if has_more else head
    new_anchor = (
        anchor
        if new_cursor == cursor and anchor is not None
        else anchor_at(conn, stream, new_cursor)
    )
    return StreamPage(
        stream=stream,  # type: ignore[arg-type]
        changes=[
            Change(
                seq=int(r.seq),
                tx=int(r.tx),
                op=r.op,
                key=r.key,
                row=json.loads(r.row) if r.row is not None else None,
            )
            for r in rows
        ],
        cursor=new_cursor,
        anchor=new_anchor,
        has_more=has_more,
    )


def compact(db: Database, *, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
    """Delete changes committed before ``now - older_than`` (whole transactions, since all
    changes of one transaction share ``committed_at``) and the sync log (per-request receive
    times and clock offsets) of the same age; returns the new horizon per stream."""
    cutoff = (now or utcnow()) - older_than
    out: dict[str, int] = {}
    with db.write() as conn:
        writer = ChangeWriter(db, conn)
        writer.lock(*STREAMS)  # no writer may commit into the range being compacted
        writer.flush()  # the watermark first: idle stores' cursors are not behind the horizon
        for stream in STREAMS:
            through = conn.execute(
                select(func.max(changes.c.seq)).where(
                    and_(changes.c.stream == stream, changes.c.committed_at < cutoff)
                )
            ).scalar()
            current = heads(conn)[stream][1]
            if through is None or through <= current:
                out[stream] = current
                continue
            # a cursor left exactly at the new horizon keeps an anchor to be checked against
            uid = conn.execute(
                select(changes.c.tx_uid).where(changes.c.stream == stream, changes.c.seq == through)
            ).scalar()
            conn.execute(
                delete(changes).where(changes.c.stream == stream, changes.c.seq <= through)
            )
            conn.execute(
                update(stream_heads)
                .where(stream_heads.c.stream == stream)
                .values(compacted_through=through, compacted_uid=uid)
            )
            out[stream] = int(through)
        conn.execute(delete(sync_log).where(sync_log.c.received_at < cutoff))
    return out


# ---------------------------------------------------------------------------------------------
# snapshots: the current rows of a stream, built as JSON by the database itself

# Each product keeps its catalog row as JSON text (written with it), so a snapshot is one
# index-ordered scan that glues text together: no JSON is built per row, here or in Python.
_SQLITE_SNAPSHOT = {
    "catalog": """
        SELECT sku, '{"key":' || json_quote(sku) || ',"row":' || "row" || '}'
        FROM products WHERE active AND sku > :after ORDER BY sku""",
    "prices": """
        SELECT sku, '{"key":' || json_quote(sku) || ',"row":{"currency":' || json_quote(currency)
               || ',"price":' || price || ',"sku":' || json_quote(sku) || '}}'
        FROM prices WHERE sku > :after ORDER BY sku""",
}
_PG_SNAPSHOT = {
    "catalog": """
        SELECT sku, '{"key":' || to_json(sku)::text || ',"row":' || "row" || '}'
        FROM products WHERE active AND sku > :after ORDER BY sku""",
    "prices": """
        SELECT sku, '{"key":' || to_json(sku)::text || ',"row":{"currency":'
               || to_json(currency)::text || ',"price":' || price || ',"sku":'
               || to_json(sku)::text || '}}'
        FROM prices WHERE sku > :after ORDER BY sku""",
}


def config_rows(conn: Connection, store_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The config stream's current rows for one store: settings, then its staff."""
    from hq.db import config, staff

    out: list[tuple[str, dict[str, Any]]] = [
        (r.key, {"key": r.key, "value": json.loads(r.value)})
        for r in conn.execute(select(config).order_by(config.c.key))
    ]
    for r in conn.execute(
        select(staff)
        .where(or_(staff.c.store_id.is_(None), staff.c.store_id == store_id))
        .where(staff.c.active)
    ):
        key = staff_key(r.staff_id)
        out.append((key, {"key": key, "value": staff_value(r._mapping)}))
    out.sort(key=lambda kv: kv[0])
    return out


def staff_key(staff_id: str) -> str:
    return f"staff:{staff_id}"


def staff_value(row: Any) -> dict[str, Any]:
    return {
        "staff_id": row["staff_id"],
        "name": row["name"],
        "role": row["role"],
        "active": bool(row["active"]),
    }


def snapshot_blocks(
    db: Database,
    conn: Connection,
    stream: str,
    store_id: str,
    after: str | None,
    *,
    rows_per_block: int = 10_000,
) -> Iterator[tuple[int, str]]:
    """Blocks of row lines (``{"key":...,"row":...}`` JSON, each ending in a newline) of a
    stream after a key, in key order, as (row count, text). ``conn`` must be the snapshot read
    transaction that also read the cursor.

    Rows are fetched through the driver's own cursor (a server-side cursor on PostgreSQL) and
    joined per block: at two million rows, per-row objects are most of the cost."""
    after_key = after or ""
    if stream == "config":
        lines = [
            json.dumps({"key": key, "row": row}, ensure_ascii=False) + "\n"
            for key, row in config_rows(conn, store_id)
            if key > after_key
        ]
        yield len(lines), "".join(lines)
        return
    if stream == "orders":  # partitioned: only this store's rows, as the last change wrote them
        from hq.db import order_feed

        q = (
            select(order_feed.c.order_id, order_feed.c.row)
            .where(order_feed.c.store_id == store_id, order_feed.c.order_id > after_key)
            .order_by(order_feed.c.order_id)
        )
        lines = [
            '{"key":' + json.dumps(key, ensure_ascii=False) + ',"row":' + row + "}\n"
            for key, row in conn.execute(q)
        ]
        yield len(lines), "".join(lines)
        return
    raw: Any = conn.connection.dbapi_connection
    if db.is_sqlite:
        cur = raw.cursor()
        cur.execute(_SQLITE_SNAPSHOT[stream].replace(":after", "?"), (after_key,))
    else:
        cur = raw.cursor(name=f"snapshot_{stream}")
        cur.itersize = rows_per_block
        cur.execute(_PG_SNAPSHOT[stream].replace(":after", "%s"), (after_key,))
    try:
        while True:
            block = cur.fetchmany(rows_per_block)
            if not block:
                return
            yield len(block), "\n".join([r[1] for r in block]) + "\n"
    finally:
        cur.close()
