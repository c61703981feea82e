-- ?1 one key, or NULL for all: rate limits with their state, the pending steps
-- waiting on each and the database's now (ms).
SELECT l.key, l.limit_count, l.per_ms, l.burst, l.overridden, l.paused_until, l.admitted,
       l.tat, coalesce(w.n, 0) AS waiting, (SELECT now_ms FROM db_clock) AS now
FROM rate_limit l
LEFT JOIN (SELECT rate_key, count(*) AS n
           FROM step
           WHERE status = 'pending' AND rate_key IS NOT NULL
             AND (?1 IS NULL OR rate_key = ?1)
           GROUP BY rate_key) w ON w.rate_key = l.key
WHERE ?1 IS NULL OR l.key = ?1
ORDER BY l.key
