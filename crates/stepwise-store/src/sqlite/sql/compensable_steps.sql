-- ?1 run id: its completed steps that have a compensation, last completed first (a
-- retried step counts its last completion). finished_at is that completion; its
-- step.completed event orders completions within one millisecond.
SELECT s.name, s.queue, s.priority, s.max_attempts, s.backoff_initial_ms,
       s.backoff_factor, s.backoff_max_ms, s.resource
FROM step s
WHERE s.run_id = ?1 AND s.compensates IS NULL AND s.compensable AND s.status = 'completed'
ORDER BY s.finished_at DESC,
         (SELECT max(e.seq) FROM event e
          WHERE e.run_id = s.run_id AND e.kind = 'step.completed' AND e.step = s.name) DESC
             NULLS LAST,
         s.seq DESC
