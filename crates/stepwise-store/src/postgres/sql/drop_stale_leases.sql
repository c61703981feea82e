-- Lease rows of workers that are no longer alive whose step moved on (every outcome
-- deletes its own row; this catches whatever a crash or an old version left). A row
-- another session holds is left for a later pass.
DELETE FROM step_lease
WHERE ctid = ANY (ARRAY(
    SELECT l.ctid
    FROM worker w
    JOIN step_lease l ON l.worker_id = w.id
    WHERE w.status <> 'alive'
      -- OFFSET 0: a probe per row, never an anti-join planned on stale statistics.
      AND NOT EXISTS (SELECT 1 FROM step s
                      WHERE s.id = l.step_id AND s.status = 'running'
                        AND s.lease_token = l.token
                      OFFSET 0)
    FOR UPDATE OF l SKIP LOCKED))
