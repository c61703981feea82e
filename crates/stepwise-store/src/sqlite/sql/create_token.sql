-- ?1 id, ?2 name, ?3 scope, ?4 SHA-256 of the secret, ?5 lifetime in ms or NULL.
INSERT INTO api_token (id, name, scope, secret_hash, created_at, expires_at)
SELECT ?1, ?2, ?3, ?4, now_ms, now_ms + ?5 FROM db_clock
RETURNING id, name, scope, created_at, expires_at, revoked_at
