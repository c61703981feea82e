-- ?1 key, ?2 limit, ?3 period (ms), ?4 burst: `limits set`. The key is overridden
-- from now on; its state (TAT) is kept, so a lowered limit applies at once.
INSERT INTO rate_limit (key, limit_count, per_ms, burst, overridden)
VALUES (?1, ?2, ?3, ?4, 1)
ON CONFLICT (key) DO UPDATE
SET limit_count = excluded.limit_count, per_ms = excluded.per_ms, burst = excluded.burst,
    overridden = 1
