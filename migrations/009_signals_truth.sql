-- Issue 12: the CRM outbox takes a third kind of write, an approved compensation. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with the same columns, rows and indexes.

CREATE TABLE crm_outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL CHECK (kind IN ('assign', 'status', 'compensation')),
    order_id        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    acked_at        TEXT,
    refused_at      TEXT
);
INSERT INTO crm_outbox_new (id, kind, order_id, payload, idempotency_key, created_at, attempts,
                            next_attempt_at, last_error, acked_at, refused_at)
    SELECT id, kind, order_id, payload, idempotency_key, created_at, attempts, next_attempt_at, last_error,
           acked_at, refused_at
    FROM crm_outbox;
DROP TABLE crm_outbox;
ALTER TABLE crm_outbox_new RENAME TO crm_outbox;
CREATE INDEX crm_outbox_due ON crm_outbox(next_attempt_at) WHERE acked_at IS NULL;
CREATE INDEX crm_outbox_pending_order ON crm_outbox(order_id, id) WHERE acked_at IS NULL AND refused_at IS NULL;

-- The effect sweep reads decisions still waiting for their effect, signal-only ones (a postmortem) included.
CREATE INDEX ai_decisions_to_observe ON ai_decisions(created_at) WHERE effect IS NULL AND state <> 'pending_approval';

-- One answer to "what does my next message mean?": a postmortem the author put off with /cancel is paused (their
-- next text is not taken as an answer) until they continue it; asked_at says when its current question was
-- asked, so the question asked last is the one a free text answers.
ALTER TABLE postmortems ADD COLUMN paused_at TEXT;
ALTER TABLE postmortems ADD COLUMN asked_at TEXT;
