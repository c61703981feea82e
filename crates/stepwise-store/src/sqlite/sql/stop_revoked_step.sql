-- ?1 step id, ?2 lease token: a running step whose lease was revoked (run cancelled
-- or timed out) and whose worker confirmed it stopped, or whose revocation outlived
-- the lease. It becomes cancelled; whatever the attempt produced is not kept.
UPDATE step
SET status = 'cancelled', finished_at = (SELECT now_ms FROM db_clock)
WHERE id = ?1 AND lease_token = ?2 AND status = 'running' AND revoked_at IS NOT NULL
RETURNING run_id, name, attempt, worker_id, started_at,
          (SELECT group_name FROM run WHERE run.id = step.run_id) AS group_name,
          (SELECT halt FROM run WHERE run.id = step.run_id) AS halt
