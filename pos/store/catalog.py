"""The catalogue as the till holds it: products, their barcodes, and the name index.

HQ owns the catalogue; the till only applies what it is given. Two ways in:
- `upsert_products` / `delete_products`: row by row, indexes live, for imports into a catalogue
  that already has rows and for the sync engine's pages of changes;
- `BulkLoad`: millions of rows into an empty catalogue, or replacing it whole (an HQ snapshot),
  with indexes, triggers and the name index built once at the end."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

from pos.domain.cart import Product
from pos.domain.gtin import lookup_key
from pos.store import schema
from pos.store._conn import DbLike, atomic, connection
from pos.store.errors import StoreError, translate


@dataclass(frozen=True, slots=True)
class CatalogItem:
    sku: str
    name: str
    price: int  # tax-inclusive, minor units
    tax_rate_bp: int
    barcodes: tuple[str, ...] = ()  # as printed; stored under gtin.lookup_key
    active: bool = True
    updated_cursor: str | None = None


_UPSERT_PRODUCT = (
    "INSERT INTO products (sku, name, price, tax_rate_bp, active, updated_cursor)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET name = excluded.name,"
    " price = excluded.price, tax_rate_bp = excluded.tax_rate_bp, active = excluded.active,"
    " updated_cursor = excluded.updated_cursor"
)
# HQ is the authority on barcodes: a code it moves to another product moves here too.
_UPSERT_BARCODE = (
    "INSERT INTO barcodes (code, sku, raw) VALUES (?, ?, ?)"
    " ON CONFLICT(code) DO UPDATE SET sku = excluded.sku, raw = excluded.raw"
)


def upsert_products(db: DbLike, items: Iterable[CatalogItem]) -> int:
    """Insert or replace products with their full barcode lists (in the caller's transaction, or
    in one of its own). Returns the number of products written."""
    count = 0
    with atomic(connection(db)) as conn:
        for item in items:
            conn.execute(
                _UPSERT_PRODUCT,
                (
                    item.sku,
                    item.name,
                    item.price,
                    item.tax_rate_bp,
                    int(item.active),
                    item.updated_cursor,
                ),
            )
            conn.execute("DELETE FROM barcodes WHERE sku = ?", (item.sku,))
            for raw in item.barcodes:
                conn.execute(_UPSERT_BARCODE, (lookup_key(raw), item.sku, raw.strip()))
            count += 1
    return count


def delete_products(db: DbLike, skus: Iterable[str]) -> int:
    """Remove products and their barcodes. Their stock ledger and past sales stay."""
    count = 0
    with atomic(connection(db)) as conn:
        for sku in skus:
            conn.execute("DELETE FROM barcodes WHERE sku = ?", (sku,))
            count += conn.execute("DELETE FROM products WHERE sku = ?", (sku,)).rowcount
    return count


# -- reading ------------------------------------------------------------------------------------

_PRODUCT_COLUMNS = (
    "p.sku, p.name, p.price, p.tax_rate_bp,"
    " (SELECT group_concat(raw, char(31)) FROM barcodes WHERE sku = p.sku),"
    " coalesce((SELECT on_hand FROM stock_on_hand WHERE sku = p.sku), 0)"
)


def _product(row: Sequence[object]) -> Product:
    sku, name, price, rate, codes, on_hand = row
    return Product(
        sku=str(sku),
        name=str(name),
        price=int(price),  # type: ignore[call-overload]
        tax_rate_bp=int(rate),  # type: ignore[call-overload]
        barcodes=tuple(str(codes).split("\x1f")) if codes else (),
        on_hand=int(on_hand),  # type: ignore[call-overload]
        available=int(on_hand),  # type: ignore[call-overload]
    )


def find_by_code(db: DbLike, key: str) -> Product | None:
    """An active product by barcode lookup key (see gtin.lookup_key)."""
    row = (
        connection(db)
        .execute(
            f"SELECT {_PRODUCT_COLUMNS} FROM barcodes b JOIN products p ON p.sku = b.sku"
            " WHERE b.code = ? AND p.active = 1",
            (key,),
        )
        .fetchone()
    )
    return _product(row) if row else None


def find_by_sku(db: DbLike, sku: str, *, active_only: bool = True) -> Product | None:
    where = " AND p.active = 1" if active_only else ""
    row = (
        connection(db)
        .execute(f"SELECT {_PRODUCT_COLUMNS} FROM products p WHERE p.sku = ?{where}", (sku,))
        .fetchone()
    )
    return _product(row) if row else None


def barcode_owner(db: DbLike, key: str) -> str | None:
    row = connection(db).execute("SELECT sku FROM barcodes WHERE code = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def has_products(db: DbLike) -> bool:
    return connection(db).execute("SELECT 1 FROM products LIMIT 1").fetchone() is not None


def count_products(db: DbLike) -> int:
    """Counts rows (a full index walk on big catalogues: reports only, never at start-up)."""
    return int(connection(db).execute("SELECT count(*) FROM products").fetchone()[0])


MIN_TRIGRAM = 3
SHORT_SEARCH_BUDGET_S = 0.05


def search_names(db: DbLike, text: str, limit: int = 20) -> list[Product]:
    """Active products whose name contains every whitespace-separated term of `text`.

    Terms of 3+ characters go through the trigram index (fast at any catalogue size). The
    trigram index cannot answer 1-2 character terms (common for Chinese, e.g. 可乐), so when
    the query has only short terms the names are scanned in order until `limit` matches are
    found; that scan stops after SHORT_SEARCH_BUDGET_S (about 160 ms would be a full scan of
    2 million names on a 2-core till) and returns what it found so far. `%` and `_` in the text
    are treated as separators."""
    terms = [t for t in text.replace("%", " ").replace("_", " ").split() if t]
    if not terms or limit <= 0:
        return []
    long_terms = [t for t in terms if len(t) >= MIN_TRIGRAM]
    short_terms = [t for t in terms if len(t) < MIN_TRIGRAM]
    conn = connection(db)
    params: list[object] = []
    if long_terms:
        where = " AND ".join("f.name LIKE ?" for _ in long_terms)
        params.extend(f"%{t}%" for t in long_terms)
        sql = (
            f"SELECT {_PRODUCT_COLUMNS} FROM products_fts f JOIN products p ON p.id = f.rowid"
            f" WHERE {where} AND p.active = 1"
        )
    else:
        sql = f"SELECT {_PRODUCT_COLUMNS} FROM products p WHERE p.active = 1"
    for term in short_terms:
        sql += " AND p.name LIKE ?"
        params.append(f"%{term}%")
    sql += " LIMIT ?"
    params.append(limit)
    if long_terms:
        return [_product(row) for row in conn.execute(sql, params)]
    return [_product(row) for row in _bounded(conn, sql, params, SHORT_SEARCH_BUDGET_S)]


def _bounded(
    conn: sqlite3.Connection, sql: str, params: Sequence[object], budget_s: float
) -> list[Sequence[object]]:
    deadline = time.perf_counter() + budget_s
    conn.set_progress_handler(lambda: time.perf_counter() > deadline, 10_000)
    rows: list[Sequence[object]] = []
    try:
        for row in conn.execute(sql, params):
            rows.append(row)
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
    finally:
        conn.set_progress_handler(None, 0)
    return rows


# -- bulk loading -------------------------------------------------------------------------------

ProductRow = tuple[str, str, int, int]  # sku, name, price, tax_rate_bp
BarcodeRow = tuple[str, str, str]  # lookup key, sku, raw
LedgerRow = tuple[str, str, int, str, str]  # movement_id, sku, delta, reason, occurred_at


FTS_BULK_HASHSIZE = 128 * 1024 * 1024
FTS_DEFAULT_HASHSIZE = 1024 * 1024


class BulkLoad:
    """Load a large catalogue in one transaction, indexes and the name index built once at the
    end. Either the catalogue is empty, or `replace=True` swaps the whole catalogue (an HQ
    snapshot); the store's own data (ledger, sales, outbox) is kept in both cases.

        with BulkLoad(store, replace=False) as load:
            load.add(products, barcodes, ledger_rows)

    Initial stock rows (reason 'initial') count only for SKUs that have no stock history on
    this till yet; the others are dropped and counted in `stock_ignored`.

    Durability: during the load the journal is a rollback journal and synchronous is OFF. The
    rows being written are HQ-owned catalogue data that can always be loaded again, and the
    whole load is one transaction, so a crashed program leaves the previous catalogue; the
    risk that remains is an OS crash or power cut in the middle of the load, which could damage
    the file, as it would any file being written without fsync. The store's own records were
    all committed with synchronous=FULL before the load starts (no sale can run during it: the
    till holds the file's lock), and WAL with synchronous=FULL is restored before `__exit__`
    returns. The rollback journal (instead of WAL) halves the bytes written: new pages go
    straight to the file instead of through the WAL and a checkpoint."""

    def __init__(
        self, db: DbLike, *, replace: bool = False, one_movement_per_sku: bool = False
    ) -> None:
        """`one_movement_per_sku`: the caller promises at most one ledger row per SKU in this
        load (an import's initial stock); on a till with an empty ledger the on-hand
        projection is then copied instead of summed."""
        self.conn = connection(db)
        # pass the Store itself so its background checkpoints pause during the load
        self._paused = db.checkpoints_paused() if hasattr(db, "checkpoints_paused") else None
        self.replace = replace
        self._one_movement_per_sku = one_movement_per_sku
        self.rows = 0
        self.timings: dict[str, float] = {}
        self._journal_changed = False
        self.journal_mode = ""  # during the load: 'delete', or 'wal' if the file was shared
        self._ledger_was_empty = False
        self._ledger_top = 0
        self._on_hand_top = 0  # ledger rows up to here are in the on-hand projection
        self.stock_ignored = 0  # initial movements dropped: their SKU already had stock history

    def __enter__(self) -> BulkLoad:
        conn = self.conn
        if conn.in_transaction:
            raise StoreError("a bulk load cannot run inside another transaction")
        if not self.replace and has_products(conn):
            raise StoreError(
                "the catalogue already has products: load into an empty catalogue, "
                "or replace it whole"
            )
        if self._paused is not None:
            self._paused.__enter__()
        try:
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            self.journal_mode = str(mode)
            self._journal_changed = mode == "delete"
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB while loading
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA threads = 2")  # index sorts may use a helper thread
            conn.execute("BEGIN IMMEDIATE")
            for name in ("products_fts_ai", "products_fts_ad", "products_fts_au"):
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            conn.execute("DROP TRIGGER IF EXISTS stock_ledger_on_hand")
            for statement in schema.CATALOG_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {_index_name(statement)}")
            self._ledger_top = conn.execute("SELECT max(pos) FROM stock_ledger").fetchone()[0] or 0
            self._ledger_was_empty = self._ledger_top == 0
            self._on_hand_top = self._ledger_top
            if self.replace:
                conn.execute("DELETE FROM barcodes")
                conn.execute("DELETE FROM products")
        except BaseException:
            self._abort()
            raise
        self._started = time.perf_counter()
        return self

    def add(
        self,
        products: Iterable[ProductRow],
        barcodes: Iterable[BarcodeRow] = (),
        ledger: Iterable[LedgerRow] = (),
    ) -> None:
        """Insert rows; iterators do (a zip of columns costs no tuple per row)."""
        conn = self.conn
        started = time.perf_counter()
        inserted = conn.executemany(
            "INSERT INTO products (sku, name, price, tax_rate_bp) VALUES (?, ?, ?, ?)", products
        ).rowcount
        conn.executemany("INSERT INTO barcodes (code, sku, raw) VALUES (?, ?, ?)", barcodes)
        conn.executemany(
            "INSERT INTO stock_ledger (movement_id, sku, delta, reason, occurred_at)"
            " VALUES (?, ?, ?, ?, ?)",
            ledger,
        )
        if self._ledger_was_empty and self._one_movement_per_sku:
            # a fresh till: each SKU's one 'initial' movement is its on-hand, copied chunk by
            # chunk (while a reader process prepares the next chunk) instead of at the end
            top = conn.execute("SELECT max(pos) FROM stock_ledger").fetchone()[0] or 0
            if top > self._on_hand_top:
                conn.execute(
                    "INSERT INTO stock_on_hand (sku, on_hand)"
                    " SELECT sku, delta FROM stock_ledger WHERE pos > ?",
                    (self._on_hand_top,),
                )
                self._on_hand_top = top
        self.rows += inserted
        self.timings["insert_s"] = self.timings.get("insert_s", 0.0) + time.perf_counter() - started

    def add_items(self, items: Iterable[CatalogItem]) -> None:
        """Add CatalogItems (an HQ snapshot page, say): barcodes keyed here, `active` and
        `updated_cursor` kept. No stock movements."""
        conn = self.conn
        started = time.perf_counter()
        products: list[tuple[str, str, int, int, int, str | None]] = []
        barcodes: list[BarcodeRow] = []
        for item in items:
            products.append(
                (
                    item.sku,
                    item.name,
                    item.price,
                    item.tax_rate_bp,
                    int(item.active),
                    item.updated_cursor,
                )
            )
            barcodes.extend((lookup_key(raw), item.sku, raw.strip()) for raw in item.barcodes)
        conn.executemany(
            "INSERT INTO products (sku, name, price, tax_rate_bp, active, updated_cursor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            products,
        )
        conn.executemany("INSERT INTO barcodes (code, sku, raw) VALUES (?, ?, ?)", barcodes)
        self.rows += len(products)
        self.timings["insert_s"] = self.timings.get("insert_s", 0.0) + time.perf_counter() - started

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort()
            return
        conn = self.conn
        try:
            self.timings["rows_s"] = time.perf_counter() - self._started
            mark = time.perf_counter()
            for statement in schema.CATALOG_INDEXES:
                conn.execute(statement)
            self.timings["indexes_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            # FTS5 flushes its pending terms every `hashsize` bytes (1 MiB by default) and then
            # merges the pieces; a large buffer builds the index in one piece, twice as fast
            conn.execute(
                "INSERT INTO products_fts(products_fts, rank) VALUES ('hashsize', ?)",
                (FTS_BULK_HASHSIZE,),
            )
            conn.execute("INSERT INTO products_fts(products_fts) VALUES ('rebuild')")
            conn.execute(
                "INSERT INTO products_fts(products_fts, rank) VALUES ('hashsize', ?)",
                (FTS_DEFAULT_HASHSIZE,),
            )
            self.timings["name_index_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            for statement in schema.FTS_TRIGGERS:
                conn.execute(statement)
            conn.execute(schema.ON_HAND_TRIGGER)
            if not self._ledger_was_empty:
                # initial stock is for SKUs new to this till: a re-loaded catalogue must not
                # add its stock column on top of the stock the till has been counting
                self.stock_ignored = conn.execute(
                    "DELETE FROM stock_ledger WHERE pos > ?1 AND reason = 'initial'"
                    " AND sku IN (SELECT sku FROM stock_ledger WHERE pos <= ?1)",
                    (self._ledger_top,),
                ).rowcount
            if not (self._ledger_was_empty and self._one_movement_per_sku):
                # (on a fresh till add() has copied each SKU's one movement already)
                conn.execute("DELETE FROM stock_on_hand")
                conn.execute(
                    "INSERT INTO stock_on_hand (sku, on_hand)"
                    " SELECT sku, sum(delta) FROM stock_ledger GROUP BY sku"
                )
            self.timings["on_hand_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            conn.execute("COMMIT")
            self.timings["commit_s"] = time.perf_counter() - mark
        except sqlite3.Error as error:
            self._abort()
            raise (translate(error) or error) from error
        except BaseException:
            self._abort()
            raise
        finally:
            self._restore()

    def _abort(self) -> None:
        # the error that got us here is the one to report; restoring is best effort
        with contextlib.suppress(sqlite3.Error):
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        with contextlib.suppress(sqlite3.Error):
            self._restore()

    def _restore(self) -> None:
        try:
            if not self.conn.in_transaction:
                self._restore_pragmas()
        finally:
            if self._paused is not None:
                paused, self._paused = self._paused, None
                paused.__exit__(None, None, None)

    def _restore_pragmas(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA cache_size = -2000")
        conn.execute("PRAGMA temp_store = DEFAULT")
        conn.execute("PRAGMA threads = 0")
        conn.execute("PRAGMA synchronous = FULL")
        if self._journal_changed:
            conn.execute("PRAGMA journal_mode = WAL")
            self._journal_changed = False


def _index_name(statement: str) -> str:
    # "CREATE [UNIQUE] INDEX name ON ..."
    words = statement.split()
    return words[words.index("INDEX") + 1]
