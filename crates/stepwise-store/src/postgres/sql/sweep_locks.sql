-- Expired locks, removed; each gets a lock.released event.
WITH swept AS (
    DELETE FROM resource_lock WHERE expires_at <= stepwise_now()
    RETURNING name, holder_kind, holder_id
)
INSERT INTO event (kind, data)
SELECT 'lock.released',
       jsonb_build_object('key', name, 'holder_kind', holder_kind, 'holder_id', holder_id,
                          'reason', 'expired')
FROM swept
