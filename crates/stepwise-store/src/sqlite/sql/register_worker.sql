INSERT INTO worker (id, name, queues, lease_ms, status, started_at, heartbeat_at, expires_at)
VALUES (?1, ?2, ?3, ?4, 'alive', (SELECT now_ms FROM db_clock), (SELECT now_ms FROM db_clock), (SELECT now_ms FROM db_clock) + ?4)
RETURNING expires_at
