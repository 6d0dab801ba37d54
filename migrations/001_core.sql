-- Core tables: the CRM mirror (orders, managers, status events), sync state and the CRM outbox.

CREATE TABLE managers (
    id               TEXT PRIMARY KEY,           -- the CRM's manager id
    name             TEXT NOT NULL,
    telegram_id      INTEGER UNIQUE,
    active           INTEGER NOT NULL DEFAULT 1,
    capacity         INTEGER NOT NULL DEFAULT 10,
    capacity_override INTEGER,                   -- set by an admin; wins over the CRM's capacity
    timezone         TEXT,
    on_leave         INTEGER NOT NULL DEFAULT 0,
    shift_override   TEXT CHECK (shift_override IN ('on', 'off')),
    misses           INTEGER NOT NULL DEFAULT 0, -- acceptance timeouts
    last_assigned_at TEXT,
    updated_at       TEXT NOT NULL
);

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,        -- the CRM's order id
    status              TEXT NOT NULL,           -- canonical status
    crm_status          TEXT NOT NULL,           -- the CRM's own name
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    status_since        TEXT NOT NULL,           -- when the current status was entered
    client_name         TEXT,
    client_city         TEXT,
    bike_brand          TEXT,
    bike_model          TEXT,
    price_eur           REAL,
    is_ebike            INTEGER NOT NULL DEFAULT 0,
    seller              TEXT,
    crm_manager_id      TEXT,
    assigned_manager_id TEXT REFERENCES managers(id),
    sale_eur            REAL,
    purchase_eur        REAL,
    shipping_eur        REAL,
    fees_eur            REAL,
    tracking_number     TEXT,
    synced_at           TEXT
);
CREATE INDEX orders_status ON orders(status, status_since);
CREATE INDEX orders_manager ON orders(assigned_manager_id, status);

CREATE TABLE order_status_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    crm_event_id INTEGER UNIQUE,                 -- set for events seen in the CRM
    order_id     TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('bot', 'crm')),
    at           TEXT NOT NULL,
    reason       TEXT
);
CREATE INDEX events_order ON order_status_events(order_id, at);
CREATE INDEX events_at ON order_status_events(at);

CREATE TABLE sync_cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE contract_violations (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    source    TEXT NOT NULL,                     -- orders | order_status_events | managers | workspace
    record_id TEXT,
    reason    TEXT NOT NULL,
    raw       TEXT NOT NULL,
    seen_at   TEXT NOT NULL
);

CREATE TABLE workspace_snapshots (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    fetched_at TEXT NOT NULL,
    payload    TEXT NOT NULL
);

-- Writes back to the CRM; a row is retried until the CRM acknowledges it.
CREATE TABLE crm_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL CHECK (kind IN ('assign', 'status')),
    order_id        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    acked_at        TEXT
);
CREATE INDEX crm_outbox_due ON crm_outbox(next_attempt_at) WHERE acked_at IS NULL;

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
