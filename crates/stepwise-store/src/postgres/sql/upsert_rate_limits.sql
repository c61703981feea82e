-- $1 keys, $2 limits, $3 periods (ms), $4 bursts: the rate limits new runs' steps
-- name. A key is written only when new or when the file's limit differs from the
-- stored one (never when `limits set` overrode it), so runs of a busy key do not
-- lock its row, which claims hold.
INSERT INTO rate_limit (key, limit_count, per_ms, burst)
SELECT i.key, i.limit_count, i.per_ms, i.burst
FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::integer[])
     AS i(key, limit_count, per_ms, burst)
WHERE NOT EXISTS (SELECT 1 FROM rate_limit l
                  WHERE l.key = i.key
                    AND (l.overridden OR (l.limit_count, l.per_ms, l.burst)
                                         = (i.limit_count, i.per_ms, i.burst)))
ORDER BY i.key
ON CONFLICT (key) DO UPDATE
SET limit_count = EXCLUDED.limit_count, per_ms = EXCLUDED.per_ms, burst = EXCLUDED.burst
WHERE NOT rate_limit.overridden
