-- Back to pending at once; the attempt is not counted. A step of a halting run is
-- skipped instead: nothing of that run starts again (for a compensation: of a run
-- that gave up compensating). Returns the run's halt for the skip's reason.
UPDATE step
SET status = CASE WHEN (SELECT CASE WHEN step.compensates IS NULL THEN r.halt IS NOT NULL
                                    ELSE r.no_compensate END
                        FROM run r WHERE r.id = step.run_id)
                  THEN 'skipped' ELSE 'pending' END,
    finished_at = CASE WHEN (SELECT CASE WHEN step.compensates IS NULL THEN r.halt IS NOT NULL
                                         ELSE r.no_compensate END
                             FROM run r WHERE r.id = step.run_id)
                       THEN (SELECT now_ms FROM db_clock) ELSE finished_at END,
    attempt = attempt - 1
WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
RETURNING run_id, name, attempt + 1 AS attempt, worker_id, started_at, status,
          (SELECT halt FROM run WHERE run.id = step.run_id) AS halt
