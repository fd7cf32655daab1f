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
written after the restore has a new one."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from hq.db import Database, changes, stream_heads, sync_log, utcnow
from sync.protocol import SNAPSHOT_PATH, STREAMS, Change, Reset, StreamPage


def row_json(row: dict[str, Any]) -> str:
    """How a row is stored as text (change log, snapshots): compact, UTF-8 kept."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ChangeWriter:
    """Collects the changes of one write transaction; :meth:`flush` numbers and stores them.

    Call :meth:`lock` for every stream the transaction will touch BEFORE changing data rows, so
    that writers always take locks in the same order (stream lock first) and cannot deadlock."""

    db: Database
    conn: Connection
    now: datetime = field(default_factory=utcnow)
    uid: int = field(default_factory=lambda: secrets.randbits(63))
    """``tx_uid`` of the changes this writer stores (the anchor of cursors, see above)."""
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _heads: dict[str, int] = field(default_factory=dict)

    def lock(self, *streams: str) -> None:
        for stream in sorted(streams):  # one global order of stream locks
            if stream in self._heads:
                continue
            if stream not in STREAMS:
                raise ValueError(f"unknown stream {stream!r}")
            stmt = self.db.lock_rows(
                select(stream_heads.c.head).where(stream_heads.c.stream == stream)
            )
            self._heads[stream] = int(self.conn.execute(stmt).scalar_one())
            self._pending[stream] = []

    def head(self, stream: str) -> int:
        """The stream's head as locked (changes collected since are numbered after it)."""
        return self._heads[stream]

    def upsert(
        self, stream: str, key: str, row: dict[str, Any], store_id: str | None = None
    ) -> None:
        self._add(stream, "upsert", key, row_json(row), store_id)

    def delete(self, stream: str, key: str, store_id: str | None = None) -> None:
        self._add(stream, "delete", key, None, store_id)

    def _add(self, stream: str, op: str, key: str, row: str | None, store_id: str | None) -> None:
        if stream not in self._heads:
            raise RuntimeError(f"lock stream {stream!r} before changing it")
        self._pending[stream].append({"op": op, "key": key, "row": row, "store_id": store_id})

    def flush(self) -> dict[str, int]:
        """Number and insert the collected changes; returns the new head per stream."""
        for stream, items in self._pending.items():
            if not items:
                continue
            head = self._heads[stream]
            tx = head + 1
            rows = [
                {
                    "stream": stream,
                    "seq": head + i,
                    "tx": tx,
                    "committed_at": self.now,
                    "tx_uid": self.uid,
                    **item,
                }
                for i, item in enumerate(items, start=1)
            ]
            self.db.bulk_insert(self.conn, changes, rows)
            head += len(items)
            self.conn.execute(
                update(stream_heads).where(stream_heads.c.stream == stream).values(head=head)
            )
            self._heads[stream] = head
            items.clear()
        return dict(self._heads)


def heads(conn: Connection) -> dict[str, tuple[int, int]]:
    """stream -> (head, compacted_through)."""
    return {
        r.stream: (int(r.head), int(r.compacted_through))
        for r in conn.execute(select(stream_heads))
    }


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
    head, horizon = heads(conn)[stream]
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
