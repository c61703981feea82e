-- ?1 resource, ?2 step id (text: the holder id), ?3 token, ?4 worker id: takes the
-- lock for a step unless a live holder has it. The lock lives as long as the
-- worker's lease plus a margin of one lease.
INSERT INTO resource_lock (name, holder_kind, holder_id, token, acquired_at, expires_at)
SELECT ?1, 'step', ?2, ?3, (SELECT now_ms FROM db_clock), w.expires_at + w.lease_ms
FROM worker w
WHERE w.id = ?4
ON CONFLICT (name) DO UPDATE
SET holder_kind = excluded.holder_kind, holder_id = excluded.holder_id,
    token = excluded.token, acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at
WHERE resource_lock.expires_at <= (SELECT now_ms FROM db_clock)
RETURNING name
