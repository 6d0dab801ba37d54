-- The AI head of sales operations: assignments, checklist, SLA timers, signals and decisions.

CREATE TABLE ai_assignments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       TEXT NOT NULL REFERENCES orders(id),
    manager_id     TEXT NOT NULL REFERENCES managers(id),
    state          TEXT NOT NULL CHECK (state IN ('offered', 'accepted', 'declined', 'expired', 'released')),
    offered_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    answered_at    TEXT,
    decline_reason TEXT,
    candidates     TEXT NOT NULL,               -- JSON: every candidate with its load and eligibility
    reason         TEXT NOT NULL
);
-- Exactly one live offer and at most one accepted assignment per order, whatever races.
CREATE UNIQUE INDEX ai_assignments_one_offer ON ai_assignments(order_id) WHERE state = 'offered';
CREATE UNIQUE INDEX ai_assignments_one_accepted ON ai_assignments(order_id) WHERE state = 'accepted';
CREATE INDEX ai_assignments_expiry ON ai_assignments(expires_at) WHERE state = 'offered';
CREATE INDEX ai_assignments_manager ON ai_assignments(manager_id, state);

CREATE TABLE checklist_answers (
    order_id    TEXT NOT NULL REFERENCES orders(id),
    item        INTEGER NOT NULL CHECK (item BETWEEN 1 AND 28),
    answer      TEXT NOT NULL CHECK (answer IN ('pass', 'fail', 'na')),
    note        TEXT,
    answered_by INTEGER NOT NULL,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (order_id, item)
);

-- Where a manager is in an order's checklist, so leaving and coming back (or a restart) resumes there.
CREATE TABLE checklist_sessions (
    order_id     TEXT PRIMARY KEY REFERENCES orders(id),
    telegram_id  INTEGER NOT NULL,
    page         INTEGER NOT NULL DEFAULT 1,
    current_item INTEGER,
    note_item    INTEGER,                       -- the item waiting for a note by reply
    opened_at    TEXT NOT NULL,
    submitted_at TEXT
);

CREATE TABLE artifacts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       TEXT NOT NULL REFERENCES orders(id),
    item           INTEGER,
    kind           TEXT NOT NULL CHECK (kind IN ('photo', 'document')),
    file_id        TEXT NOT NULL,
    file_unique_id TEXT NOT NULL,
    local_path     TEXT,
    telegram_id    INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (order_id, file_unique_id)
);

-- One row per status visit, with its deadlines computed once on entry under the policy then in force.
CREATE TABLE sla_timers (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id            TEXT NOT NULL REFERENCES orders(id),
    status              TEXT NOT NULL,
    entered_at          TEXT NOT NULL,
    policy_version      TEXT NOT NULL,
    budget_minutes      INTEGER NOT NULL,
    clock               TEXT NOT NULL,
    severity            TEXT NOT NULL,
    reminder_at         TEXT NOT NULL,
    breach_at           TEXT NOT NULL,
    stuck_at            TEXT NOT NULL,
    reminded_at         TEXT,
    breached_at         TEXT,
    stuck_signalled_at  TEXT,
    closed_at           TEXT,
    -- the earliest instant at which the sweep has something to do for this visit
    next_due_at         TEXT
);
CREATE UNIQUE INDEX sla_timers_open ON sla_timers(order_id) WHERE closed_at IS NULL;
CREATE INDEX sla_timers_due ON sla_timers(next_due_at) WHERE closed_at IS NULL AND next_due_at IS NOT NULL;

CREATE TABLE ai_sla_violations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    timer_id       INTEGER NOT NULL REFERENCES sla_timers(id),
    kind           TEXT NOT NULL CHECK (kind IN ('budget', 'stuck_72h')),
    order_id       TEXT NOT NULL,
    status         TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    budget_minutes INTEGER NOT NULL,
    entered_at     TEXT NOT NULL,
    breach_at      TEXT NOT NULL,
    detected_at    TEXT NOT NULL,
    severity       TEXT NOT NULL,
    signal_id      INTEGER,
    UNIQUE (timer_id, kind)
);
CREATE INDEX ai_sla_violations_detected ON ai_sla_violations(detected_at);

CREATE TABLE ai_signals (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    type             TEXT NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    circle           TEXT NOT NULL,
    order_id         TEXT,
    dedup_key        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    owner_person     INTEGER,                   -- Telegram id of the person who owns it now
    escalation_level INTEGER NOT NULL DEFAULT 0, -- 0 manager, 1 lead, 2 owner
    needs_decision   INTEGER NOT NULL DEFAULT 0,
    deadline_at      TEXT NOT NULL,
    raised_at        TEXT NOT NULL,
    raised_by        TEXT NOT NULL,
    acked_at         TEXT,
    acked_by         INTEGER,
    resolved_at      TEXT,
    resolved_by      INTEGER,
    resolution       TEXT,
    snoozed_until    TEXT,
    still_on_it_asked_at TEXT,
    repeats          INTEGER NOT NULL DEFAULT 0,
    last_seen_at     TEXT NOT NULL,
    title            TEXT NOT NULL,
    details          TEXT NOT NULL DEFAULT '{}'  -- JSON facts the texts are rendered from
);
CREATE UNIQUE INDEX ai_signals_dedup_open ON ai_signals(dedup_key) WHERE state <> 'resolved';
CREATE INDEX ai_signals_state ON ai_signals(state, severity);
CREATE INDEX ai_signals_deadline ON ai_signals(deadline_at) WHERE state <> 'resolved';
CREATE INDEX ai_signals_order ON ai_signals(order_id);
CREATE INDEX ai_signals_raised ON ai_signals(raised_at);

CREATE TABLE ai_decisions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    signal_id  INTEGER REFERENCES ai_signals(id),
    order_id   TEXT,
    kind       TEXT NOT NULL CHECK (kind IN ('auto', 'human')),
    action     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'pending_approval', 'approved', 'rejected')),
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}',
    effect     TEXT,
    effect_at  TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ai_decisions_signal ON ai_decisions(signal_id);
CREATE INDEX ai_decisions_order ON ai_decisions(order_id);
CREATE INDEX ai_decisions_created ON ai_decisions(created_at);

CREATE TABLE postmortems (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    signal_id  INTEGER NOT NULL UNIQUE REFERENCES ai_signals(id),
    author     INTEGER NOT NULL,
    step       TEXT NOT NULL DEFAULT 'cause' CHECK (step IN ('cause', 'action', 'effect', 'prevention', 'done')),
    cause      TEXT,
    action     TEXT,
    effect     TEXT,
    prevention TEXT,
    created_at TEXT NOT NULL,
    done_at    TEXT
);

CREATE TABLE kpi_snapshots (
    day    TEXT NOT NULL,                       -- local date, YYYY-MM-DD
    metric TEXT NOT NULL,
    scope  TEXT NOT NULL DEFAULT '',            -- a status or a manager id, '' for the whole
    value  REAL,
    PRIMARY KEY (day, metric, scope)
);

CREATE TABLE kpi_baseline (
    metric TEXT NOT NULL,
    scope  TEXT NOT NULL DEFAULT '',
    value  REAL,
    source TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (metric, scope)
);
