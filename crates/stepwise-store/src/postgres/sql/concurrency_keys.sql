-- $1 a key, or NULL for every key.
SELECT k.key, k.max_active, k.active,
       (SELECT count(*) FROM run r WHERE r.concurrency_key = k.key AND r.waiting) AS waiting,
       k.limit_set
FROM concurrency_key k
WHERE $1::text IS NULL OR k.key = $1
ORDER BY k.key
