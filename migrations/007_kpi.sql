-- KPIs and digests: indexes for the windowed reads, so the morning digest reads a day's rows, not the history.

-- SLA visits finished in a window, covering what the breach rate reads (no table lookups for ~10k rows a day).
CREATE INDEX sla_timers_closed ON sla_timers(closed_at, status, entered_at, breach_at, order_id)
    WHERE closed_at IS NOT NULL;
-- SLA visits whose budget ran out in a window (most of them closed in time: closed_at filters them in the index).
CREATE INDEX sla_timers_breach ON sla_timers(breach_at, closed_at);
-- Escalations resolved in a window.
CREATE INDEX ai_signals_resolved ON ai_signals(resolved_at) WHERE resolved_at IS NOT NULL;
-- Open orders per status with their age and manager, read without touching the orders table.
CREATE INDEX orders_open_owner ON orders(status, status_since, assigned_manager_id, id);
