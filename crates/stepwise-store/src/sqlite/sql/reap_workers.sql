-- ?1 the caller, who never reaps itself.
UPDATE worker
SET status = 'dead', stopped_at = (SELECT now_ms FROM db_clock)
WHERE status = 'alive' AND expires_at < (SELECT now_ms FROM db_clock) AND id <> ?1
RETURNING id, name
