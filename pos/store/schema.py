"""The store's tables, as numbered migrations. PRAGMA user_version records how many have run.

Migrations only ever append: a released migration is never edited. Each runs at start-up inside
the one transaction that also moves user_version, so a till is never left half-migrated."""

from __future__ import annotations

from pos.store.orders import MIGRATION as ONLINE_ORDERS

# Triggers and indexes the catalogue bulk loader drops and recreates (see catalog.BulkLoad).
FTS_TRIGGERS = (
    """CREATE TRIGGER products_fts_ai AFTER INSERT ON products BEGIN
        INSERT INTO products_fts(rowid, name) VALUES (new.id, new.name);
    END""",
    """CREATE TRIGGER products_fts_ad AFTER DELETE ON products BEGIN
        INSERT INTO products_fts(products_fts, rowid, name) VALUES ('delete', old.id, old.name);
    END""",
    """CREATE TRIGGER products_fts_au AFTER UPDATE OF name ON products BEGIN
        INSERT INTO products_fts(products_fts, rowid, name) VALUES ('delete', old.id, old.name);
        INSERT INTO products_fts(rowid, name) VALUES (new.id, new.name);
    END""",
)

# The on-hand projection follows the ledger in the same transaction, whoever appends to it.
ON_HAND_TRIGGER = """CREATE TRIGGER stock_ledger_on_hand AFTER INSERT ON stock_ledger BEGIN
    INSERT INTO stock_on_hand(sku, on_hand) VALUES (new.sku, new.delta)
    ON CONFLICT(sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand;
END"""

CATALOG_INDEXES = (
    "CREATE UNIQUE INDEX products_sku ON products(sku)",
    "CREATE UNIQUE INDEX barcodes_code ON barcodes(code)",
    "CREATE INDEX barcodes_sku ON barcodes(sku)",
)
# Kept live during bulk loads: a load's movement ids share one prefix and count up, so they
# land together in the index instead of being scattered through it.
LEDGER_INDEXES = ("CREATE UNIQUE INDEX stock_ledger_movement ON stock_ledger(movement_id)",)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema
    (
        """CREATE TABLE device (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            store_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            timezone TEXT NOT NULL,
            next_seq INTEGER NOT NULL DEFAULT 1,
            next_sale_no INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        )""",
        "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        # id is the FTS rowid; sku is the business key (unique index, droppable for bulk loads)
        """CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            price INTEGER NOT NULL CHECK (price >= 0),
            tax_rate_bp INTEGER NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 10000),
            active INTEGER NOT NULL DEFAULT 1,
            updated_cursor TEXT
        )""",
        # code = gtin.lookup_key(raw)
        "CREATE TABLE barcodes (code TEXT NOT NULL, sku TEXT NOT NULL, raw TEXT NOT NULL)",
        # trigram: substring search that works for Chinese (no word breaks) as for English.
        # detail=none keeps the index small and quick to build; substring search goes through
        # LIKE, which FTS5 answers from the trigram index and re-checks against the name.
        """CREATE VIRTUAL TABLE products_fts USING fts5(
            name, content='products', content_rowid='id', tokenize='trigram', detail='none',
            columnsize=0
        )""",
        *FTS_TRIGGERS,
        *CATALOG_INDEXES,
        """CREATE TABLE stock_ledger (
            pos INTEGER PRIMARY KEY,
            movement_id TEXT NOT NULL,
            sku TEXT NOT NULL,
            delta INTEGER NOT NULL,
            reason TEXT NOT NULL,
            ref_event_id TEXT,
            order_id TEXT,
            epoch INTEGER,
            occurred_at TEXT NOT NULL
        )""",
        *LEDGER_INDEXES,
        """CREATE TABLE stock_on_hand (
            sku TEXT PRIMARY KEY,
            on_hand INTEGER NOT NULL
        ) WITHOUT ROWID""",
        ON_HAND_TRIGGER,
        """CREATE TABLE sales (
            sale_id TEXT PRIMARY KEY,
            sale_no INTEGER NOT NULL UNIQUE,
            short_id TEXT NOT NULL,
            business_day TEXT NOT NULL,
            completed_at TEXT NOT NULL,
            guide_id TEXT,
            total INTEGER NOT NULL,
            tax_total INTEGER NOT NULL,
            currency TEXT NOT NULL,
            event_id TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX sales_day ON sales(business_day, sale_no)",
        "CREATE INDEX sales_short_id ON sales(short_id)",
        """CREATE TABLE sale_lines (
            sale_id TEXT NOT NULL REFERENCES sales(sale_id),
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            qty INTEGER NOT NULL,
            unit_price INTEGER NOT NULL,
            tax_rate_bp INTEGER NOT NULL,
            line_total INTEGER NOT NULL,
            tax_amount INTEGER NOT NULL,
            movement_id TEXT NOT NULL,
            code TEXT,
            stock_short INTEGER NOT NULL,
            PRIMARY KEY (sale_id, line_no)
        ) WITHOUT ROWID""",
        """CREATE TABLE payments (
            sale_id TEXT NOT NULL REFERENCES sales(sale_id),
            n INTEGER NOT NULL,
            method TEXT NOT NULL CHECK (method IN ('cash', 'card', 'wallet')),
            amount INTEGER NOT NULL,
            tendered INTEGER,
            change INTEGER,
            reference TEXT,
            PRIMARY KEY (sale_id, n)
        ) WITHOUT ROWID""",
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            device_id TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            occurred_at TEXT NOT NULL,
            payload TEXT NOT NULL,
            payload_hash TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'acked', 'rejected', 'superseded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            hq_result TEXT,
            acked_at TEXT
        )""",
        "CREATE INDEX outbox_state ON outbox(state, seq)",
    ),
    # 2: online orders (holds, this store's rows of HQ's orders stream, tasks, steps)
    ONLINE_ORDERS,
)

SCHEMA_VERSION = len(MIGRATIONS)
