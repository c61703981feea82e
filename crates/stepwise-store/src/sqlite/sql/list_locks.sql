SELECT name, holder_kind, holder_id, acquired_at, expires_at
FROM resource_lock
WHERE expires_at > (SELECT now_ms FROM db_clock)
ORDER BY name
