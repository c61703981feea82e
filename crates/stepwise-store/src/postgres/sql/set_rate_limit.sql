-- $1 key, $2 limit, $3 period (ms), $4 burst: `limits set`. The key is overridden
-- from now on: workflow files no longer change it. It applies to the next claim:
-- a TAT the old limit had pushed ahead is brought back to now (a lowered limit
-- spaces the next starts by its own interval from there).
INSERT INTO rate_limit (key, limit_count, per_ms, burst, overridden)
VALUES ($1, $2, $3, $4, true)
ON CONFLICT (key) DO UPDATE
SET limit_count = EXCLUDED.limit_count, per_ms = EXCLUDED.per_ms, burst = EXCLUDED.burst,
    overridden = true, tat = least(rate_limit.tat, (SELECT stepwise_now()))
