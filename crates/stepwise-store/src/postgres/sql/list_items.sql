-- $1 run id, $2 step name, $3 first index, $4 page size (one more is read, to
-- know whether a next page exists): a page of a `for_each` step's items.
SELECT s.id, s.name, s.queue, s.status, s.attempt, s.max_attempts + s.attempt_base AS max_attempts,
       s.run_after, s.worker_id, s.started_at, s.finished_at, s.output, s.error,
       s.compensates, s.resource, s.dependents, s.wait_kind, s.wait_signal, s.wait_until,
       s.item_index, s.rate_key
FROM step p
JOIN step s ON s.item_of = p.id AND s.item_index >= $3
WHERE p.run_id = $1 AND p.name = $2
ORDER BY s.item_index
LIMIT $4
