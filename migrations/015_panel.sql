-- The admin panel (issue 18): one-time sign-in links and sessions, kept only as SHA-256 hashes of their
-- secrets; arbitration that parks the lower-priority signal of a conflict; the autopilot's mode per action.
-- (The cookie-signing secret, when WEB_SECRET is not set, is generated once and kept in kv as 'web.secret'.)

CREATE TABLE web_login_links (
    token_hash TEXT PRIMARY KEY,        -- sha256 of the token in the link; the token itself is never stored
    user_id    INTEGER NOT NULL,        -- the Telegram user the link was sent to
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT                     -- single use: set by the first sign-in
);

CREATE TABLE web_sessions (
    session_hash TEXT PRIMARY KEY,      -- sha256 of the session id in the (signed) cookie
    user_id      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    ended_at     TEXT                   -- signed out
);

-- A signal parked by arbitration: no ladder, no pings until the signal that parked it is settled.
ALTER TABLE ai_signals ADD COLUMN parked_by INTEGER;
ALTER TABLE ai_signals ADD COLUMN parked_reason TEXT;
CREATE INDEX ai_signals_parked ON ai_signals(parked_by) WHERE parked_by IS NOT NULL;

-- Phase 4 autopilot: an action switched back to "ask a human" (absent row: as the policy file says).
CREATE TABLE autopilot_modes (
    action     TEXT PRIMARY KEY,
    mode       TEXT NOT NULL CHECK (mode IN ('auto', 'ask')),
    changed_at TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX ai_decisions_auto ON ai_decisions(created_at) WHERE kind = 'auto';
