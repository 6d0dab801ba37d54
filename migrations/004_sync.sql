-- BikeWerk sync: the lookups the sync and the CRM outbox make on every page or flush, kept cheap.

-- Status changes made in the bot whose echo in the CRM's event feed has not been seen yet (usually a handful):
-- the sync attaches the CRM's event id to them instead of storing the same change twice.
CREATE INDEX order_status_events_unconfirmed ON order_status_events(order_id, to_status)
    WHERE source = 'bot' AND crm_event_id IS NULL;

-- Violations are listed newest first per source (admin views, tests).
CREATE INDEX contract_violations_source ON contract_violations(source, id);

-- A write the CRM refused (a 4xx that retrying soon cannot fix): still retried, slowly, but it no longer holds
-- the order's later writes or the bot's status against the CRM's.
ALTER TABLE crm_outbox ADD COLUMN refused_at TEXT;

-- Writes still on their way, per order: one order's writes are delivered in order, and the sync keeps the
-- bot's status while a status write is on its way.
CREATE INDEX crm_outbox_pending_order ON crm_outbox(order_id, id) WHERE acked_at IS NULL AND refused_at IS NULL;
