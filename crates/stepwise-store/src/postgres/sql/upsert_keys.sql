-- $1 keys (sorted, distinct), $2 the limits their workflows ask for. Creates missing
-- keys and locks every row (in key order, so two creators never deadlock) before the
-- runs join their lines. An operator's limit (`limit_set`) is kept.
INSERT INTO concurrency_key (key, max_active)
SELECT key, max_active
FROM unnest($1::text[], $2::integer[]) WITH ORDINALITY AS i(key, max_active, ord)
ORDER BY ord
ON CONFLICT (key) DO UPDATE
SET max_active = CASE WHEN concurrency_key.limit_set THEN concurrency_key.max_active
                      ELSE excluded.max_active END
