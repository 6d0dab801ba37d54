-- Dispatch and the order flow in Telegram: what a manager's next free message answers, and the orders no manager
-- could take (so `order.unassigned` is raised once per order, not on every dispatch pass).

-- A manager's free text or file answers the question last put to them: a photo or a note goes to the checklist
-- they are filling, a text after "Shipped" is the tracking number. One row per person; it survives a restart.
CREATE TABLE input_focus (
    telegram_id INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('checklist', 'tracking')),
    order_id    TEXT NOT NULL REFERENCES orders(id),
    since       TEXT NOT NULL
);

-- Orders waiting in pending_manager with no eligible manager; the row goes when an offer is made.
CREATE TABLE dispatch_waits (
    order_id  TEXT PRIMARY KEY REFERENCES orders(id),
    since     TEXT NOT NULL,
    signal_id INTEGER
);

-- /order ID reads every assignment of an order; the dispatch pass reads who declined or missed it.
CREATE INDEX ai_assignments_order ON ai_assignments(order_id, state);

-- Short numeric handles for orders in button data: a CRM order id may be 64 characters of anything, and a
-- button's callback data holds 64 bytes. AUTOINCREMENT: a handle is never reused for another order.
CREATE TABLE order_handles (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL UNIQUE REFERENCES orders(id)
);

-- One dispatch pass: every manager as the pass saw them (JSON snapshots) and the load weights, plus the managers
-- it picked, in order. ai_assignments.candidates names the pass and the pick number; replaying the picks before
-- it on the snapshot gives every candidate and its score at that moment (storage/assignments.py), without
-- writing M candidates for each of N orders of a large pass.
CREATE TABLE dispatch_passes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    weights  TEXT NOT NULL,
    managers TEXT NOT NULL,
    picks    TEXT NOT NULL
);
