-- ?1 run id: its completed steps that have a compensation, last completed first
-- (the attempt sequence orders completions; a retried step counts its last one).
SELECT s.name, s.queue, s.priority, s.max_attempts, s.backoff_initial_ms,
       s.backoff_factor, s.backoff_max_ms, s.resource
FROM step s
WHERE s.run_id = ?1 AND s.compensates IS NULL AND s.compensable AND s.status = 'completed'
ORDER BY (SELECT max(a.seq) FROM attempt a
          WHERE a.step_id = s.id AND a.outcome = 'completed') DESC NULLS LAST, s.seq DESC
