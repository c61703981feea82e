SELECT name, holder_kind, holder_id, acquired_at, expires_at
FROM resource_lock
WHERE expires_at > (SELECT stepwise_now())
ORDER BY name
