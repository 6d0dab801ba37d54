-- Signals and decisions, second part: where each signal was pinged, check-ins ("still on it?"), postmortem
-- reminders, and the indexes the escalation and effect sweeps read through.

-- JSON list of the chats that show this signal's ping, so every state change edits all of them.
ALTER TABLE ai_signals ADD COLUMN ping_chats TEXT NOT NULL DEFAULT '[]';
-- The last time the owner confirmed progress (acknowledge, snooze, "still on it" answered).
ALTER TABLE ai_signals ADD COLUMN checked_in_at TEXT;
-- When postmortem.missing was raised for this signal (at most once).
ALTER TABLE ai_signals ADD COLUMN postmortem_flagged_at TEXT;

CREATE INDEX ai_signals_live ON ai_signals(state, deadline_at) WHERE state <> 'resolved';
CREATE INDEX ai_signals_unrouted ON ai_signals(id) WHERE state <> 'resolved' AND ping_chats = '[]';
CREATE INDEX ai_signals_postmortem_due ON ai_signals(raised_at)
    WHERE severity = 'critical' AND postmortem_flagged_at IS NULL;

-- "Still on it?" for an accepted order without progress: one question per status visit (sla_timers row).
CREATE TABLE order_checkins (
    timer_id    INTEGER PRIMARY KEY REFERENCES sla_timers(id),
    order_id    TEXT NOT NULL,
    telegram_id INTEGER NOT NULL,               -- the manager asked
    asked_at    TEXT NOT NULL,
    reply_by    TEXT NOT NULL,                  -- no answer by then -> order.no_progress
    answered_at TEXT,
    signal_id   INTEGER
);
CREATE INDEX order_checkins_waiting ON order_checkins(reply_by) WHERE answered_at IS NULL AND signal_id IS NULL;

-- Decisions whose observed effect is still to be filled in.
CREATE INDEX ai_decisions_effect_pending ON ai_decisions(created_at) WHERE effect IS NULL AND order_id IS NOT NULL;
