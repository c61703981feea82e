-- $1 name, $2 holder kind, $3 holder id, $4 token, $5 ttl ms: takes a free or expired
-- lock. Returns nothing when a live holder has it.
INSERT INTO resource_lock (name, holder_kind, holder_id, token, acquired_at, expires_at)
VALUES ($1, $2, $3, $4, (SELECT stepwise_now()), (SELECT stepwise_now()) + $5 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
SET holder_kind = excluded.holder_kind, holder_id = excluded.holder_id,
    token = excluded.token, acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at
WHERE resource_lock.expires_at <= (SELECT stepwise_now())
RETURNING name, holder_kind, holder_id, acquired_at, expires_at
