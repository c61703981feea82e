-- $1 run, $2 step name, $3 attempt number or NULL for all. A clean success has no
-- attempt row: it is read back from the completed step (no log), last, as in
-- `run_attempts.sql`.
SELECT h.number, h.outcome, h.log
FROM (
    SELECT a.number, a.outcome, a.log, a.seq
    FROM attempt a
    JOIN step s ON s.id = a.step_id
    WHERE s.run_id = $1 AND s.name = $2
    UNION ALL
    SELECT s.attempt, 'completed', NULL, NULL
    FROM step s
    WHERE s.run_id = $1 AND s.name = $2 AND s.status = 'completed'
      AND NOT EXISTS (SELECT 1 FROM attempt a
                      WHERE a.run_id = $1 AND a.step_id = s.id AND a.number = s.attempt
                        AND a.outcome = 'completed')
) h
WHERE $3::integer IS NULL OR h.number = $3
ORDER BY h.seq NULLS LAST
