-- ?1 step id, ?2 lease token, ?3 output. Only a step still running under the named
-- lease changes (fencing).
UPDATE step
SET status = 'completed', output = ?3, finished_at = (SELECT now_ms FROM db_clock)
WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
RETURNING run_id, name, attempt, worker_id, started_at, dependents
