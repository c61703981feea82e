-- ?1 the JSON input of reset_steps.sql: before a retry reopens completed steps,
-- their completed attempt goes into the history as a row, since the step row that
-- stood for it (see run_attempts.sql) is about to be cleared.
INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                     finished_at, outcome)
SELECT s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, s.started_at,
       s.finished_at, 'completed'
FROM json_each(?1) j
JOIN step s ON s.id = unhex(j.value ->> '$.id')
WHERE s.status = 'completed'
  AND NOT EXISTS (SELECT 1 FROM attempt a
                  WHERE a.run_id = s.run_id AND a.step_id = s.id AND a.number = s.attempt
                    AND a.outcome = 'completed')
ORDER BY j.key
