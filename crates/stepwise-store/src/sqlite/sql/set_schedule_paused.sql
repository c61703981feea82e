-- ?1 name, ?2 paused.
UPDATE schedule SET paused = ?2, updated_at = (SELECT now_ms FROM db_clock) WHERE name = ?1
RETURNING name
