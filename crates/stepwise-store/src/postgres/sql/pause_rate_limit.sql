-- $1 key, $2 until (a time) or $3 for (ms from the database's now), $4 only
-- lengthen an existing pause (a `Retry-After` never shortens an operator's pause).
UPDATE rate_limit
SET paused_until = CASE
        WHEN $4 AND paused_until IS NOT NULL
            THEN greatest(paused_until,
                          coalesce($2, (SELECT stepwise_now()) + $3 * interval '1 millisecond'))
        ELSE coalesce($2, (SELECT stepwise_now()) + $3 * interval '1 millisecond')
    END
WHERE key = $1
RETURNING paused_until
