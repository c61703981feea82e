-- Expired locks, removed; each gets a lock.released event. A lock row another
-- session holds (a claimer taking it, a heartbeat extending it) is left for the
-- next pass.
WITH expired AS (
    SELECT name
    FROM resource_lock
    WHERE expires_at <= (SELECT stepwise_now())
    FOR UPDATE SKIP LOCKED
),
swept AS (
    DELETE FROM resource_lock l
    USING expired
    WHERE l.name = expired.name
    RETURNING l.name, l.holder_kind, l.holder_id
)
INSERT INTO event (kind, data, at)
SELECT 'lock.released',
       jsonb_build_object('key', name, 'holder_kind', holder_kind, 'holder_id', holder_id,
                          'reason', 'expired'),
       (SELECT stepwise_now())
FROM swept
