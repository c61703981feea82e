UPDATE worker
SET heartbeat_at = (SELECT now_ms FROM db_clock), expires_at = (SELECT now_ms FROM db_clock) + lease_ms
WHERE id = ?1 AND status = 'alive'
RETURNING expires_at
