-- 008: the ladder and the routing that apply to a signal are frozen on it when it is raised (issue 11), as
-- budgets are per status visit: a later policy or settings edit does not change a running escalation.

-- The policy's [signals] timings in force when the signal was raised (JSON, domain.signals.Ladder). Signals
-- raised before this migration ran under the values then written in code, which are this default.
ALTER TABLE ai_signals ADD COLUMN ladder TEXT NOT NULL DEFAULT
    '{"response_minutes": {"critical": 15, "high": 120, "medium": 1440}, "review_time": "10:00", "review_weekday": 0, "snooze_long_hours": 4, "snooze_short_hours": 1, "still_on_it_reply_minutes": 60}';
-- The routing contacts (JSON, domain.signals.Contacts: leads, crisis and admin chats, owner, leads) in force
-- when the signal was routed. NULL: not routed yet (raised without settings) or raised before this migration;
-- the current settings apply then, and are frozen when the sweep first routes it.
ALTER TABLE ai_signals ADD COLUMN contacts TEXT;
