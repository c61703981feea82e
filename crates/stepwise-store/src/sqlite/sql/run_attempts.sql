-- ?1 run: its finished attempts, each step's oldest first. A clean success has no
-- attempt row (complete_steps writes one only when the attempt left a log): the
-- completed step row describes it, and is read here as that attempt, last of its
-- step. Databases from before v5 have the row, so the step row is not read twice.
SELECT step_id, number, worker_id, started_at, finished_at, outcome, error
FROM (
    SELECT a.step_id, a.number, a.worker_id, a.started_at, a.finished_at, a.outcome,
           a.error, a.seq AS k
    FROM attempt a
    WHERE a.run_id = ?1
    UNION ALL
    SELECT s.id, s.attempt, s.worker_id, s.started_at, s.finished_at, 'completed', NULL,
           9223372036854775807
    FROM step s
    WHERE s.run_id = ?1 AND s.status = 'completed' AND s.item_of IS NULL
      AND NOT EXISTS (SELECT 1 FROM attempt a
                      WHERE a.run_id = ?1 AND a.step_id = s.id AND a.number = s.attempt
                        AND a.outcome = 'completed')
)
ORDER BY k
