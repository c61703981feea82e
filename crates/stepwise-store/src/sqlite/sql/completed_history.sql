-- ?1 the JSON input of complete_steps.sql, ?2 JSON array of the seqs it accepted:
-- attempt rows for the successes that left a log. A clean success writes none: the
-- completed step row is its history (run_attempts.sql reads it as one).
INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                     finished_at, outcome, log)
SELECT s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, s.started_at,
       s.finished_at, 'completed', j.value ->> '$.log'
FROM json_each(?1) j
JOIN step s ON s.id = unhex(j.value ->> '$.id') AND s.lease_token = unhex(j.value ->> '$.token')
WHERE s.seq IN (SELECT value FROM json_each(?2)) AND j.value ->> '$.log' IS NOT NULL
