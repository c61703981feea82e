-- ?1 key, ?2 until (ms) or ?3 for (ms from the database's now), ?4 only lengthen an
-- existing pause (a `Retry-After` never shortens an operator's pause).
UPDATE rate_limit
SET paused_until = CASE
        WHEN ?4 AND paused_until IS NOT NULL
            THEN max(paused_until, coalesce(?2, (SELECT now_ms FROM db_clock) + ?3))
        ELSE coalesce(?2, (SELECT now_ms FROM db_clock) + ?3)
    END
WHERE key = ?1
RETURNING paused_until
