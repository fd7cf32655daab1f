"""HQ's storage: one schema (SQLAlchemy Core) on a SQLite file or on PostgreSQL.

The same statements run on both. The few places that differ (how a write transaction starts,
row locks, upserts, building snapshot JSON in SQL) are behind this module's helpers so that the
rest of HQ does not test the dialect.

SQLite is opened in WAL mode with ``synchronous=FULL``; every write transaction starts with
``BEGIN IMMEDIATE`` so that it holds the single write lock from its first statement (a deferred
transaction that reads first and writes later can fail to upgrade its lock). On PostgreSQL a
write transaction takes row locks explicitly (``SELECT ... FOR UPDATE``) where order matters."""

from __future__ import annotations

import json
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    exc,
    inspect,
    select,
    text,
)
from sqlalchemy import Sequence as NumberSequence
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from hq.errors import Unavailable

# ---------------------------------------------------------------------------------------------
# types


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python, UTC in the database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only
Money = BigInteger
Key = String(128)

metadata = MetaData()

stores = Table(
    "stores",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("timezone", String(64), nullable=False, default="Asia/Shanghai"),
    Column("created_at", UTCDateTime, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("store_id", String(64), ForeignKey("stores.store_id"), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("last_applied_seq", BigInteger, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime),
    Column("last_push_at", UTCDateTime),
    Column("last_pull_at", UTCDateTime),
    Column("clock_offset_s", Float),
    Column("pending_reported", BigInteger),
    Column("oldest_pending_at", UTCDateTime),
    Column("app_version", String(64)),
    UniqueConstraint("store_id", "device_id"),
)

sync_log = Table(
    "sync_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("device_pk", Id, nullable=False),
    Column("kind", String(16), nullable=False),  # push | pull
    Column("received_at", UTCDateTime, nullable=False),
    Column("device_time", UTCDateTime),
    Column("clock_offset_s", Float),
    Column("events", Integer, nullable=False, default=0),
    Column("applied", Integer, nullable=False, default=0),
    Column("last_applied_seq", BigInteger),
    Index("ix_sync_log_device", "device_pk", "id"),
)

staff = Table(
    "staff",
    metadata,
    Column("staff_id", String(64), primary_key=True),
    Column("store_id", String(64), ForeignKey("stores.store_id")),
    Column("name", Text, nullable=False),
    Column("role", String(32), nullable=False, default="guide"),
    Column("active", Boolean, nullable=False, default=True),
)

products = Table(
    "products",
    metadata,
    Column("sku", Key, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tax_rate_bp", Integer, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("row", Text, nullable=False),  # the catalog stream's row (JSON), for snapshots
)

barcodes = Table(
    "barcodes",
    metadata,
    Column("code", Key, primary_key=True),  # the key (see sync.protocol.catalog_file.lookup_key)
    Column("sku", Key, nullable=False),
    Column("raw", Key, nullable=False),  # as given, as sent to the stores
    Index("ix_barcodes_sku", "sku"),
)

prices = Table(
    "prices",
    metadata,
    Column("sku", Key, primary_key=True),
    Column("price", Money, nullable=False),
    Column("currency", String(3), nullable=False, default="CNY"),
)

promotions = Table(  # placeholder until promotions get their own issue
    "promotions",
    metadata,
    Column("promo_id", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime),
    Column("active", Boolean, nullable=False, default=True),
)

config = Table(
    "config",
    metadata,
    Column("key", Key, primary_key=True),
    Column("value", Text, nullable=False),  # JSON
)

stream_heads = Table(
    "stream_heads",
    metadata,
    Column("stream", String(32), primary_key=True),
    Column("head", BigInteger, nullable=False, default=0),
    Column("compacted_through", BigInteger, nullable=False, default=0),
    # tx_uid of the change at compacted_through (deleted with it): a cursor sitting exactly
    # there can still be checked against the history it was taken on (hq.changelog)
    Column("compacted_uid", BigInteger),
)

stream_partitions = Table(  # a partitioned stream's lock per partition (orders: per store)
    "stream_partitions",
    metadata,
    Column("stream", String(32), nullable=False),
    Column("partition", String(64), nullable=False),
    PrimaryKeyConstraint("stream", "partition"),
)

change_numbers = NumberSequence("change_numbers", metadata=metadata)
"""Where a partitioned stream's change numbers come from on PostgreSQL (see hq.changelog)."""

changes = Table(
    "changes",
    metadata,
    Column("stream", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("tx", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),
    Column("key", Key, nullable=False),
    Column("store_id", String(64)),  # None: every store
    Column("row", Text),  # JSON; None for a delete
    Column("committed_at", UTCDateTime, nullable=False),
    # random id of the write transaction that made the change: a pull cursor's anchor, so that
    # a cursor names the history it was taken on (None: written before the column existed)
    Column("tx_uid", BigInteger),
    PrimaryKeyConstraint("stream", "seq"),
)

events = Table(
    "events",
    metadata,
    Column("device_pk", Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    # not UNIQUE: an event id reused under a new seq is kept (rejected) under that seq
    Column("event_id", String(36), nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # applied | rejected | superseded
    Column("reason", Text),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    PrimaryKeyConstraint("device_pk", "seq"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("store_id", String(64), nullable=False),
    Column("device_pk", Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_quarantine_store", "store_id"),
)

sales = Table(
    "sales",
    metadata,
    Column("sale_id", String(36), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("device_pk", Id, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("sale_no", BigInteger, nullable=False),
    Column("business_day", String(10), nullable=False),
    Column("completed_at", UTCDateTime, nullable=False),
    Column("total", Money, nullable=False),
    Column("tax_total", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("guide_id", String(64)),
    Column("lines", Integer, nullable=False),
    Index("ix_sales_store_day", "store_id", "business_day"),
)

payments = Table(
    "payments",
    metadata,
    Column("sale_id", String(36), nullable=False),
    Column("n", Integer, nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("business_day", String(10), nullable=False),
    Column("method", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("tendered", Money),
    Column("change", Money),
    Column("reference", Text),
    PrimaryKeyConstraint("sale_id", "n"),
    Index("ix_payments_store_day", "store_id", "business_day"),
)

stock_ledger = Table(
    "stock_ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("store_id", String(64), nullable=False),
    Column("movement_id", String(36), nullable=False, unique=True),
    Column("sku", Key, nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    # no (store, sku) index: on-hand is read from stock_on_hand, and every index here is paid
    # for by every sale line
)

eod_reports = Table(  # what stores concluded at end of day (for hq report)
    "eod_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("store_id", String(64), nullable=False),
    Column("device_pk", Id, nullable=False),
    Column("business_day", String(10), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("pending_events", Integer, nullable=False),
    Column("sales_mismatches", Integer, nullable=False),
    Column("stock_mismatches", Integer, nullable=False),
    Column("differences", Text, nullable=False),  # JSON list
    Index("ix_eod_store", "store_id", "id"),
)

stock_on_hand = Table(  # projection of stock_ledger, kept in the same transaction
    "stock_on_hand",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("sku", Key, nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    PrimaryKeyConstraint("store_id", "sku"),
)

# --- online orders (hq.orders, hq.dispatch) ----------------------------------------------------

Index("ix_stores_lat_lon", stores.c.lat, stores.c.lon)  # dispatch: stores in a bounding box
# dispatch far away: which stores hold a SKU. Updates of on_hand stay HOT (no indexed column
# changes), so only a new (store, sku) pair pays for this index.
Index("ix_stock_on_hand_sku", stock_on_hand.c.sku, stock_on_hand.c.store_id)

platforms = Table(  # e-commerce platforms that submit orders (their API key kept as a hash)
    "platforms",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("platform", String(64), nullable=False),
    Column("platform_order_id", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),  # of the intake body (idempotency)
    Column("state", String(24), nullable=False),  # open | backorder | completed | cancelled
    Column("epoch", BigInteger, nullable=False, default=0),  # last epoch handed out
    Column("delivery", String(16), nullable=False),  # pickup | delivery
    Column("pickup_store", String(64)),
    Column("address", Text),  # JSON {text, lat, lon}
    Column("customer", Text, nullable=False),  # JSON {name, phone}
    Column("promised_at", UTCDateTime),
    Column("note", Text),
    Column("pickup_code", String(16)),  # HQ tells the customer; stores get only its hash
    Column("pickup_code_hash", String(64)),
    Column("origin_store", String(64)),  # endless aisle: the store that took the order
    Column("created_at", UTCDateTime, nullable=False),
    Column("retry_at", UTCDateTime),  # backorder: when dispatch tries again
    UniqueConstraint("platform", "platform_order_id"),
    Index("ix_orders_retry", "state", "retry_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(64), nullable=False),
    Column("line_id", String(16), nullable=False),
    Column("sku", Key, nullable=False),
    Column("name", Text, nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("fulfilled", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("order_id", "line_id"),
)

assignments = Table(  # one store's part of an order under one epoch
    "assignments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("state", String(24), nullable=False),
    Column("prev_state", String(24)),  # the state a refused cancel request returns to
    Column("accept_by", UTCDateTime, nullable=False),
    Column("assigned_at", UTCDateTime, nullable=False),
    Column("cancel_requested_at", UTCDateTime),
    Column("then", String(16)),  # after an agreed cancel: redispatch | cancel
    Column("ended_at", UTCDateTime),
    Index("ix_assignments_order", "order_id", "store_id"),
    Index("ix_assignments_state", "state", "accept_by"),
)

assignment_lines = Table(
    "assignment_lines",
    metadata,
    Column("assignment_id", Id, nullable=False),
    Column("line_id", String(16), nullable=False),
    Column("sku", Key, nullable=False),
    Column("qty", BigInteger, nullable=False),  # what this store is to fulfil (0: taken away)
    Column("picked", BigInteger),
    Column("fulfilled", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("assignment_id", "line_id"),
)

order_holds = Table(  # HQ's pending holds per (store, sku): live assignments' quantities
    "order_holds",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("sku", Key, nullable=False),
    Column("held", BigInteger, nullable=False),
    PrimaryKeyConstraint("store_id", "sku"),
)

availability_blocks = Table(  # a rejection lowers HQ's view of a store ('*': every SKU)
    "availability_blocks",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("sku", Key, nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("reason", String(64), nullable=False),
    PrimaryKeyConstraint("store_id", "sku"),
)

order_timeline = Table(
    "order_timeline",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),  # HQ time
    Column("kind", String(32), nullable=False),
    Column("store_id", String(64)),
    Column("epoch", BigInteger),
    Column("detail", Text),  # JSON
    Index("ix_order_timeline_order", "order_id", "id"),
)

order_feed = Table(  # the orders stream's current row per (store, order): its snapshot
    "order_feed",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("row", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),  # change number that last wrote it
    PrimaryKeyConstraint("store_id", "order_id"),
    Index("ix_order_feed_store_seq", "store_id", "seq"),  # a store's stream head (SSE poll)
)

order_incidents = Table(  # double fulfilment and the like, for `hq report`
    "order_incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("stores", Text, nullable=False),  # JSON list
    Column("detail", Text, nullable=False),  # JSON
    Column("opened_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
)

order_requests = Table(  # endless-aisle requests from tills: request_id -> order
    "order_requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
)

# --- the platforms' side of online orders (hq.notify, hq.platform_orders) ------------------------

platform_notify_heads = Table(  # per platform: the last notification number (locked to number)
    "platform_notify_heads",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("head", BigInteger, nullable=False, default=0, server_default="0"),
)

platform_notifications = Table(  # what the customer should hear, per platform in commit order
    "platform_notifications",
    metadata,
    Column("platform", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),  # gap-free per platform, in commit order
    Column("notification_id", String(36), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("body", Text, nullable=False),  # JSON: the notification as the platform receives it
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("platform", "seq"),
    Index("ix_platform_notifications_order", "order_id"),
)

order_cancels = Table(  # a platform's cancel of one of its orders (the last one asked)
    "order_cancels",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("platform", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # requested | cancelled | refused
    Column("reason", Text),  # the customer's, as the platform gave it
    Column("outcome", Text),  # why it ended so (the store's refusal, a handover...)
    Column("requested_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
)

platform_webhooks = Table(  # where HQ pushes a platform's notifications (optional)
    "platform_webhooks",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("delivered_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("lease_until", UTCDateTime),  # one HQ process delivers at a time
)

# ---------------------------------------------------------------------------------------------
# the database handle


def database_url(target: str) -> str:
    """A SQLAlchemy URL from what an operator types: a DSN, or a path of a SQLite file."""
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).expanduser().resolve()}"


class Database:
    """An engine plus the transaction helpers HQ uses (:meth:`write`, :meth:`read`)."""

    def __init__(
        self,
        target: str,
        *,
        pg_schema: str | None = None,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 10,
    ) -> None:
        self.url = database_url(target)
        if self.url.startswith("sqlite"):
            self.engine = _sqlite_engine(self.url, busy_timeout_ms)
        elif self.url.startswith("postgresql"):
            connect_args: dict[str, Any] = {"connect_timeout": 5}
            if pg_schema:
                connect_args["options"] = f"-csearch_path={pg_schema}"
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=2 * pool_size,
                pool_pre_ping=True,
                connect_args=connect_args,
            )
        else:
            raise ValueError(f"unsupported database: {self.url.split(':', 1)[0]}")
        self.dialect: str = self.engine.dialect.name
        # SQLite has one writer at a time; waiting on a lock here is fair and wakes at once,
        # where SQLite's busy handler polls with sleeps (long tails under many tills)
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @classmethod
    def from_env(cls, target: str | None = None) -> Database:
        return cls(target or os.environ.get("HQ_DB") or "hq.db")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def create_schema(self) -> None:
        """Create every table that is missing (idempotent) and the stream head rows."""
        from sync.protocol import STREAMS

        with self.write() as conn:
            metadata.create_all(conn)
            _add_missing_columns(conn)
            for table in metadata.sorted_tables:  # indexes added to tables that already existed
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            present = {r.stream for r in conn.execute(stream_heads.select())}
            missing = [
                {"stream": s, "head": 0, "compacted_through": 0}
                for s in STREAMS
                if s not in present
            ]
            if missing:
                conn.execute(stream_heads.insert(), missing)
            if not self.is_sqlite:
                # never behind a number already used (a fresh sequence, or one restored with
                # an older dump than the tables)
                conn.execute(
                    text(
                        "SELECT setval('change_numbers', h) FROM (SELECT GREATEST("
                        "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                        " FROM change_numbers),"
                        " (SELECT head FROM stream_heads WHERE stream = 'orders'),"
                        " (SELECT max(seq) FROM changes WHERE stream = 'orders')) AS h) AS t"
                        " WHERE h > 0"
                    )
                )

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction. Database unreachable or busy -> :class:`Unavailable`."""
        with self._serialised(), translate_db_errors(), self.engine.connect() as conn:
            if self.is_sqlite:
                conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin():
                yield conn

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """One read transaction; ``snapshot=True`` gives every statement the same view
        (REPEATABLE READ on PostgreSQL; a SQLite read transaction in WAL mode already has it)."""
        with translate_db_errors(), self.engine.connect() as conn:
            if snapshot and not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # --- dialect helpers ----------------------------------------------------------------------

    def lock_rows(self, stmt: Any) -> Any:
        """``SELECT ... FOR UPDATE`` where the database has row locks (SQLite's write
        transaction already holds the whole database)."""
        return stmt if self.is_sqlite else stmt.with_for_update()

    def upsert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        *,
        add: Sequence[str] = (),
    ) -> None:
        """Insert rows, or update the existing ones by ``keys``. Columns in ``add`` are added
        to the stored value instead of replacing it (counters, on-hand)."""
        if not rows:
            return
        ins = (postgresql.insert if not self.is_sqlite else sqlite.insert)(table)
        cols = [c for c in rows[0] if c not in keys]
        if not cols:
            conn.execute(ins.on_conflict_do_nothing(index_elements=list(keys)), list(rows))
            return
        set_ = {c: (table.c[c] + ins.excluded[c]) if c in add else ins.excluded[c] for c in cols}
        conn.execute(ins.on_conflict_do_update(index_elements=list(keys), set_=set_), list(rows))

    @contextmanager
    def batched(self, conn: Connection) -> Iterator[None]:
        """Statements run inside go to PostgreSQL together (pipeline mode: one round trip
        for those whose results are not read); errors come as SQLAlchemy's, as elsewhere."""
        if self.is_sqlite:
            yield
            return
        raw: Any = conn.connection.dbapi_connection
        with _driver_errors("pipeline"), raw.pipeline():
            yield

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many rows in the caller's transaction: COPY on PostgreSQL (one round trip,
        no per-row statement), ``executemany`` on SQLite (a C loop over one prepared
        statement). Rows must all have the same keys."""
        if not rows:
            return
        if self.is_sqlite:
            conn.execute(table.insert(), list(rows))
            return
        cols = list(rows[0])
        names = ", ".join(f'"{c}"' for c in cols)
        raw: Any = conn.connection.dbapi_connection
        sql = f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT BINARY)'
        with _driver_errors(sql), raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types([_pg_type(table.c[c].type) for c in cols])
            if len(cols) == 1:
                for row in rows:
                    copy.write_row((row[cols[0]],))
                return
            values = operator.itemgetter(*cols)  # the row's values as a tuple, in one C call
            for row in rows:
                copy.write_row(values(row))

    def add_to_counters(
        self,
        conn: Connection,
        table: Table,
        keys: dict[str, Any],
        column: str,
        deltas: dict[str, int],
        key_column: str,
    ) -> None:
        """``column += delta`` per ``key_column`` value (rows created at the delta when
        missing), with the fixed ``keys`` (e.g. the store) on every row, in key order so that
        concurrent writers lock rows in the same order."""
        if not deltas:
            return
        items = sorted(deltas.items())
        if self.is_sqlite:
            self.upsert(
                conn,
                table,
                [{**keys, key_column: k, column: d} for k, d in items],
                [*keys, key_column],
                add=[column],
            )
            return
        fixed = ", ".join(f":{k}" for k in keys)
        cols = ", ".join(f'"{c}"' for c in [*keys, key_column, column])
        conflict = ", ".join(f'"{c}"' for c in [*keys, key_column])
        # the pairs travel as one JSON text (json.dumps runs in C; psycopg's array adapter
        # quotes each element in Python); json_array_elements keeps their order
        conn.execute(
            text(
                f'INSERT INTO "{table.name}" ({cols}) '
                f"SELECT {fixed}, e->>0, CAST(e->>1 AS bigint) FROM json_array_elements(CAST(:kd AS json)) AS e "
                f'ON CONFLICT ({conflict}) DO UPDATE SET "{column}" = "{table.name}"."{column}" + excluded."{column}"'
            ),
            {**keys, "kd": json.dumps(items)},
        )

    def existing(self, conn: Connection, column: Any, values: Sequence[str]) -> set[str]:
        """Which of ``values`` are present in ``column`` (one array parameter on PostgreSQL,
        so the statement text does not change with the number of values)."""
        if not values:
            return set()
        if not self.is_sqlite:
            table = column.table.name
            rows = conn.execute(
                text(
                    f'SELECT "{column.name}" FROM "{table}" WHERE "{column.name}" = '
                    "ANY(ARRAY(SELECT json_array_elements_text(CAST(:vs AS json))))"
                ),
                {"vs": json.dumps(list(values))},
            )
            return {r[0] for r in rows}
        found: set[str] = set()
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            found.update(r[0] for r in conn.execute(select(column).where(column.in_(chunk))))
        return found


@contextmanager
def _driver_errors(statement: str) -> Iterator[None]:
    """Errors of statements run on the driver's own cursor, wrapped as SQLAlchemy wraps the
    others (IntegrityError, OperationalError...), so callers handle one family."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error


def _pg_type(sa_type: Any) -> str:
    """The PostgreSQL type name binary COPY needs for a column of this schema."""
    if isinstance(sa_type, UTCDateTime | DateTime):
        return "timestamptz"
    if isinstance(sa_type, Boolean):
        return "bool"
    if isinstance(sa_type, BigInteger):
        return "int8"
    if isinstance(sa_type, Integer):
        return "int4"
    if isinstance(sa_type, Float):
        return "float8"
    if isinstance(sa_type, String | Text):
        return "text"
    raise TypeError(f"no COPY type for {sa_type!r}")


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module: SQLAlchemy's begin event
        # below emits BEGIN (IMMEDIATE for writes) itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.info.pop("begin", "BEGIN"))

    return engine


# columns added to tables after their first release: (table, column), created as nullable
_ADDED_COLUMNS = (("changes", "tx_uid"), ("stream_heads", "compacted_uid"))


def _add_missing_columns(conn: Connection) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for the columns an older HQ database lacks (rows written
    before keep NULL there)."""
    inspector = inspect(conn)
    for table_name, column_name in _ADDED_COLUMNS:
        present = {c["name"] for c in inspector.get_columns(table_name)}
        if column_name in present:
            continue
        column = metadata.tables[table_name].c[column_name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f'ALTER TABLE "{table_name}" ADD COLUMN "{column_name}" {kind}')


# errors that mean "HQ's database is down or busy" rather than "this request is wrong"
_TRANSIENT = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)


@contextmanager
def translate_db_errors() -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as error:
        raise Unavailable(
            "HQ's database is not answering; try again shortly",
            detail=type(error.orig if isinstance(error, exc.DBAPIError) else error).__name__,
        ) from error


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "Database",
    "assignment_lines",
    "assignments",
    "availability_blocks",
    "barcodes",
    "change_numbers",
    "changes",
    "config",
    "database_url",
    "devices",
    "events",
    "metadata",
    "order_cancels",
    "order_feed",
    "order_holds",
    "order_incidents",
    "order_lines",
    "order_requests",
    "order_timeline",
    "orders",
    "payments",
    "platform_notifications",
    "platform_notify_heads",
    "platform_webhooks",
    "platforms",
    "prices",
    "products",
    "promotions",
    "quarantine",
    "sales",
    "staff",
    "stock_ledger",
    "stock_on_hand",
    "stores",
    "stream_heads",
    "stream_partitions",
    "sync_log",
    "text",
    "utcnow",
]
