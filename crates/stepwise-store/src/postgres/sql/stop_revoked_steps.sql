-- $1 step ids, $2 lease tokens: running steps whose lease was revoked (run cancelled
-- or timed out) and whose worker confirmed they stopped, or whose revocation outlived
-- the lease. They become cancelled; whatever the attempt produced is not kept.
WITH stopped AS (
    UPDATE step s
    SET status = 'cancelled', finished_at = (SELECT stepwise_now())
    FROM unnest($1::uuid[], $2::uuid[]) AS i(id, token)
    WHERE s.id = i.id AND s.lease_token = i.token AND s.status = 'running'
      AND s.revoked_at IS NOT NULL
    RETURNING s.id, s.run_id, s.name, s.attempt, s.worker_id, s.lease_token, s.started_at,
              s.finished_at
),
unleased AS (
    DELETE FROM step_lease l USING stopped x
    WHERE l.worker_id = x.worker_id AND l.step_id = x.id
),
history AS (
    INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                         finished_at, outcome, error)
    SELECT id, run_id, attempt, worker_id, lease_token, started_at, finished_at, 'cancelled',
           'stopped: the run was cancelled or timed out'
    FROM stopped
),
events AS (
    INSERT INTO event (kind, run_id, step, group_name, data, at)
    SELECT 'step.cancelled', x.run_id, x.name, r.group_name,
           jsonb_build_object('attempt', x.attempt, 'reason', 'run ' || replace(coalesce(r.halt, 'cancelled'), '_', ' ')),
           x.finished_at
    FROM stopped x
    JOIN run r ON r.id = x.run_id
)
SELECT run_id, id FROM stopped
