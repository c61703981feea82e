-- $1 run id: every attempt of its steps, each step's in the order they ended. A
-- clean success leaves no attempt row (the step row describes it): it is read back
-- from its completed step, last among that step's attempts, unless a row for it
-- exists (it left a log, it was written before a retry reset the step, or it was
-- written before schema 5).
SELECT step_id, number, worker_id, started_at, finished_at, outcome, error
FROM (
    SELECT a.step_id, a.number, a.worker_id, a.started_at, a.finished_at, a.outcome,
           a.error, a.seq
    FROM attempt a
    WHERE a.run_id = $1
    UNION ALL
    SELECT s.id, s.attempt, s.worker_id, s.started_at, s.finished_at, 'completed', NULL,
           NULL
    FROM step s
    WHERE s.run_id = $1 AND s.status = 'completed' AND s.item_of IS NULL
      AND NOT EXISTS (SELECT 1 FROM attempt a
                      WHERE a.run_id = $1 AND a.step_id = s.id AND a.number = s.attempt
                        AND a.outcome = 'completed')
) h
ORDER BY h.seq NULLS LAST, h.step_id
