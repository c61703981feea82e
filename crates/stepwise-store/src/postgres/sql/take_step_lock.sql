-- $1 resource, $2 step id, $3 token, $4 worker id: takes the lock for a step unless a
-- live holder has it. A racing claimer waits for this row and then finds it held.
-- The lock lives as long as the worker's lease plus a margin of one lease.
INSERT INTO resource_lock (name, holder_kind, holder_id, token, acquired_at, expires_at)
SELECT $1, 'step', $2::text, $3, (SELECT stepwise_now()),
       w.expires_at + w.lease_ms * interval '1 millisecond'
FROM worker w
WHERE w.id = $4
ON CONFLICT (name) DO UPDATE
SET holder_kind = excluded.holder_kind, holder_id = excluded.holder_id,
    token = excluded.token, acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at
WHERE resource_lock.expires_at <= (SELECT stepwise_now())
RETURNING name
