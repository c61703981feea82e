UPDATE api_token SET revoked_at = coalesce(revoked_at, (SELECT now_ms FROM db_clock))
WHERE id = ?1
