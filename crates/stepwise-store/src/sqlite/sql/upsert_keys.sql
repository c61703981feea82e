-- ?1 JSON array of {"key", "limit"}: creates missing keys before the runs join their
-- lines. An operator's limit (`limit_set`) is kept.
INSERT INTO concurrency_key (key, max_active)
SELECT j.value ->> '$.key', j.value ->> '$.limit'
FROM json_each(?1) j
WHERE true
ON CONFLICT (key) DO UPDATE
SET max_active = CASE WHEN concurrency_key.limit_set THEN concurrency_key.max_active
                      ELSE excluded.max_active END
