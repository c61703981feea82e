-- ?1 key, ?2 limit, ?3 period (ms), ?4 burst: `limits set`. The key is overridden
-- from now on. It applies to the next claim: a TAT (microseconds) the old limit had
-- pushed ahead is brought back to now.
INSERT INTO rate_limit (key, limit_count, per_ms, burst, overridden)
VALUES (?1, ?2, ?3, ?4, 1)
ON CONFLICT (key) DO UPDATE
SET limit_count = excluded.limit_count, per_ms = excluded.per_ms, burst = excluded.burst,
    overridden = 1, tat = min(rate_limit.tat, (SELECT now_ms FROM db_clock) * 1000)
