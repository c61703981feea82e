-- ?1 JSON array of {"key", "limit", "per_ms", "burst"}: the rate limits new runs'
-- steps name. A key is written when new, or when the file's limit differs from the
-- stored one and `limits set` has not overridden it.
INSERT INTO rate_limit (key, limit_count, per_ms, burst)
SELECT j.value ->> '$.key', j.value ->> '$.limit', j.value ->> '$.per_ms',
       j.value ->> '$.burst'
FROM json_each(?1) j
WHERE true
ON CONFLICT (key) DO UPDATE
SET limit_count = excluded.limit_count, per_ms = excluded.per_ms, burst = excluded.burst
WHERE NOT rate_limit.overridden
