-- ?1 JSON array of just-completed step seqs: their attempt history rows.
INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                     finished_at, outcome)
SELECT s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, s.started_at,
       s.finished_at, 'completed'
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
