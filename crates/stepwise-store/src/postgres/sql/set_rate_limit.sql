-- $1 key, $2 limit, $3 period (ms), $4 burst: `limits set`. The key is overridden
-- from now on: workflow files no longer change it. Its state (TAT) is kept, so a
-- lowered limit applies to the very next claim.
INSERT INTO rate_limit (key, limit_count, per_ms, burst, overridden)
VALUES ($1, $2, $3, $4, true)
ON CONFLICT (key) DO UPDATE
SET limit_count = EXCLUDED.limit_count, per_ms = EXCLUDED.per_ms, burst = EXCLUDED.burst,
    overridden = true
