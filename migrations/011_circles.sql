-- Circles, part 1 (SPEC §12, §14): what orders carry for unit economics and quality (channel, countries,
-- compensations, disputes, payments), the CFO's margin forecast booked at acceptance, the leaks it signalled,
-- and the indexes the scorecards read through.

ALTER TABLE orders ADD COLUMN channel TEXT;
ALTER TABLE orders ADD COLUMN client_country TEXT;
ALTER TABLE orders ADD COLUMN seller_country TEXT;

-- The CRM's lists on an order, replaced as a whole each time the order is synced.
CREATE TABLE order_compensations (
    order_id   TEXT NOT NULL,
    id         TEXT NOT NULL,
    amount_eur REAL NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    at         TEXT NOT NULL,
    PRIMARY KEY (order_id, id)
);
CREATE INDEX order_compensations_at ON order_compensations(at);

CREATE TABLE order_disputes (
    order_id  TEXT NOT NULL,
    id        TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    outcome   TEXT,
    PRIMARY KEY (order_id, id)
);
CREATE INDEX order_disputes_opened ON order_disputes(opened_at);

CREATE TABLE order_payments (
    order_id   TEXT NOT NULL,
    id         TEXT NOT NULL,
    amount_eur REAL NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    at         TEXT NOT NULL,
    PRIMARY KEY (order_id, id)
);

-- The margin the CFO expected when the order was accepted (or first seen past acceptance: source 'history'),
-- with the prices it was booked on, so a purchase above the booked one shows as a cause.
CREATE TABLE margin_forecasts (
    order_id      TEXT PRIMARY KEY,
    booked_at     TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('accepted', 'history')),
    sale_eur      REAL NOT NULL,
    purchase_eur  REAL NOT NULL,
    shipping_eur  REAL NOT NULL,
    fees_eur      REAL NOT NULL,
    forecast_eur  REAL NOT NULL
);

-- The last finding a circle signalled per order and rule (unit economics: the leak rules; quality: a dispute
-- opened, a repeat incident): a sync that brings the same figures again raises nothing new; a larger leak (a new
-- compensation) does.
CREATE TABLE circle_findings (
    order_id   TEXT NOT NULL,
    rule       TEXT NOT NULL,
    eur        REAL NOT NULL,
    causes     TEXT NOT NULL,
    found_at   TEXT NOT NULL,
    signal_id  INTEGER,
    PRIMARY KEY (order_id, rule)
);

-- Orders changed since the detector's last run.
CREATE INDEX orders_synced ON orders(synced_at);
-- Scorecards: offers per manager in a window; breaches in a window.
CREATE INDEX ai_assignments_offered ON ai_assignments(offered_at, manager_id);
