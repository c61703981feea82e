-- Expired locks, removed; the caller writes a lock.released event for each (from
-- these rows, so a lock expiring between two statements cannot go unreported).
DELETE FROM resource_lock WHERE expires_at <= (SELECT now_ms FROM db_clock)
RETURNING name, holder_kind, holder_id
