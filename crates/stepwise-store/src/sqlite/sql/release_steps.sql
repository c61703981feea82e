-- Back to pending at once; the attempt is not counted. A step of a halting run is
-- skipped instead: nothing of that run starts again.
UPDATE step
SET status = CASE WHEN (SELECT halt FROM run WHERE run.id = step.run_id) IS NULL
                  THEN 'pending' ELSE 'skipped' END,
    finished_at = CASE WHEN (SELECT halt FROM run WHERE run.id = step.run_id) IS NULL
                       THEN finished_at ELSE (SELECT now_ms FROM db_clock) END,
    attempt = attempt - 1
WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
RETURNING run_id, name, attempt + 1, worker_id, started_at, status
