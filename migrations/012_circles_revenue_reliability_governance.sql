-- Circles, part 2: governance (sanctions screening, process drift), reliability (API latency, health checks,
-- sync runs) and revenue (leads).

-- Sanctions lists as imported; exactly one is in force (the newest imported); older ones stay for the record.
CREATE TABLE sanctions_lists (
    version     TEXT PRIMARY KEY,             -- the file's content hash (16 hex digits)
    source      TEXT NOT NULL,                -- the file name as given
    datasets    TEXT NOT NULL DEFAULT '',     -- the list's `dataset` values, comma-separated
    entries     INTEGER NOT NULL,
    published_at TEXT,                        -- the newest last_change of its entries (the list's own date)
    imported_at TEXT NOT NULL,
    in_force    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX sanctions_lists_in_force ON sanctions_lists(in_force) WHERE in_force = 1;

CREATE TABLE sanctions_entries (
    list_version TEXT NOT NULL REFERENCES sanctions_lists(version),
    entry_id     TEXT NOT NULL,
    schema       TEXT NOT NULL,
    name         TEXT NOT NULL,
    aliases      TEXT NOT NULL DEFAULT '[]',  -- JSON list
    countries    TEXT NOT NULL DEFAULT '',
    birth_date   TEXT NOT NULL DEFAULT '',
    sanctions    TEXT NOT NULL DEFAULT '',
    dataset      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (list_version, entry_id)
) WITHOUT ROWID;

-- One row per order screened against a list version: both parties (client and seller) at once.
CREATE TABLE sanctions_screenings (
    order_id     TEXT NOT NULL,
    list_version TEXT NOT NULL,
    screened_at  TEXT NOT NULL,
    client_score REAL,                        -- the best score at or above the threshold, else NULL
    seller_score REAL,
    hit          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, list_version)
) WITHOUT ROWID;

-- A sanctions hit holds its order from dispatch until a human clears it (false positive) or cancels it.
CREATE TABLE compliance_holds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     TEXT NOT NULL,
    party        TEXT NOT NULL CHECK (party IN ('client', 'seller')),
    name         TEXT NOT NULL,               -- the name on the order
    entry_id     TEXT NOT NULL,
    entry_name   TEXT NOT NULL,
    matched_name TEXT NOT NULL,               -- the list's name or alias that matched
    score        REAL NOT NULL,
    list_version TEXT NOT NULL,
    held_at      TEXT NOT NULL,
    signal_id    INTEGER,
    released_at  TEXT,
    released_by  TEXT,
    outcome      TEXT CHECK (outcome IN ('false_positive', 'cancelled')),
    UNIQUE (order_id, entry_id)
);
CREATE INDEX compliance_holds_live ON compliance_holds(order_id) WHERE released_at IS NULL;

-- Process drift: a CRM change the documented process does not allow (one row per event and rule).
CREATE TABLE process_drift (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL,             -- order_status_events.id
    order_id    TEXT NOT NULL,
    rule        TEXT NOT NULL,                -- forbidden_transition | checklist_incomplete | cancel_unapproved | status_back
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    signal_id   INTEGER,
    UNIQUE (event_id, rule)
);
CREATE INDEX process_drift_at ON process_drift(at);

-- The sync client's own latency records: one row per HTTP request to the CRM.
CREATE TABLE api_latency (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    route  TEXT NOT NULL,                     -- method and path without the query
    ms     REAL NOT NULL,
    ok     INTEGER NOT NULL                   -- 1: a 2xx answer; 0: error status, timeout or no connection
);
CREATE INDEX api_latency_at ON api_latency(at);

-- Every sync run: when, how it ended.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    error       TEXT,
    orders      INTEGER NOT NULL DEFAULT 0,
    events      INTEGER NOT NULL DEFAULT 0,
    leads       INTEGER NOT NULL DEFAULT 0,
    violations  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sync_runs_finished ON sync_runs(finished_at);

-- Critical-path health checks (one row per check and component).
CREATE TABLE health_checks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    component TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX health_checks_at ON health_checks(at);

-- Leads from GET /api/crm/leads (SPEC §14).
CREATE TABLE leads (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    channel     TEXT NOT NULL,
    checkout_at TEXT,
    booking_at  TEXT,
    order_id    TEXT,
    lost_at     TEXT,
    cost_eur    REAL,
    synced_at   TEXT NOT NULL
);
CREATE INDEX leads_created ON leads(created_at, channel);
CREATE INDEX leads_checkout ON leads(checkout_at) WHERE checkout_at IS NOT NULL;
