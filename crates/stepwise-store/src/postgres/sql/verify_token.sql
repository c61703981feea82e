-- $1 SHA-256 of a presented secret: its token, and whether it has expired.
SELECT id, name, scope, created_at, expires_at, revoked_at,
       coalesce(expires_at <= (SELECT stepwise_now()), false) AS expired
FROM api_token
WHERE secret_hash = $1
