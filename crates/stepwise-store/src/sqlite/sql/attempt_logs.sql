-- ?1 run, ?2 step name, ?3 attempt number or NULL for all. A clean success has no
-- attempt row (see run_attempts.sql): its step row stands for it, with no log.
SELECT number, outcome, log
FROM (
    SELECT a.number, a.outcome, a.log, a.seq AS k
    FROM attempt a
    JOIN step s ON s.id = a.step_id
    WHERE s.run_id = ?1 AND s.name = ?2 AND (?3 IS NULL OR a.number = ?3)
    UNION ALL
    SELECT s.attempt, 'completed', NULL, 9223372036854775807
    FROM step s
    WHERE s.run_id = ?1 AND s.name = ?2 AND s.status = 'completed'
      AND (?3 IS NULL OR s.attempt = ?3)
      AND NOT EXISTS (SELECT 1 FROM attempt a
                      WHERE a.run_id = ?1 AND a.step_id = s.id AND a.number = s.attempt
                        AND a.outcome = 'completed')
)
ORDER BY k
