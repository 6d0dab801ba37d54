-- The dispatch queue (storage/orders.py pending_without_offer): orders waiting for a manager, oldest first.
-- A pass reads the backlog a batch at a time from a cursor; without this index every batch sorted every
-- pending order again. Partial: only pending_manager orders are in it, so the sync's writes barely touch it.
CREATE INDEX orders_pending_queue ON orders(created_at, id) WHERE status = 'pending_manager';
