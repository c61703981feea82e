-- $1 id, $2 name, $3 scope, $4 SHA-256 of the secret, $5 lifetime in ms or NULL.
INSERT INTO api_token (id, name, scope, secret_hash, expires_at)
VALUES ($1, $2, $3, $4, (SELECT stepwise_now()) + $5 * interval '1 millisecond')
RETURNING id, name, scope, created_at, expires_at, revoked_at
