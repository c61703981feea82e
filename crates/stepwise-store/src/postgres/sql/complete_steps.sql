-- $1 step ids, $2 lease tokens, $3 outputs, $4 attempt logs. Only rows still running under the named
-- lease change (fencing); the caller reports the others as refused. A revoked lease
-- (run cancelled or timed out) is not current either.
-- The step update is HOT (no index names a column it changes); the lease row goes.
-- A clean success writes no attempt row: the step row (attempt, worker, lease,
-- started_at, finished_at) describes it, and the read side lists it from there. An
-- attempt that left a log keeps it in its row.
-- Plans must not depend on statistics, which lag far behind the hot tables in a
-- burst: the batch is materialized once (a rescan is then cheap) and rows are found
-- by primary key (`= ANY`).
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::text[])
        AS i(id, token, output, log)
),
done AS (
    UPDATE step s
    SET status = 'completed', output = i.output, finished_at = (SELECT stepwise_now())
    FROM input i
    WHERE s.id = ANY ($1::uuid[]) AND s.id = i.id AND s.lease_token = i.token
      AND s.status = 'running' AND s.revoked_at IS NULL
    RETURNING s.id, s.run_id, s.name, s.attempt, s.worker_id, s.lease_token,
              s.started_at, s.finished_at, s.dependents, i.log,
              s.resource IS NOT NULL AS locked
),
unleased AS (
    DELETE FROM step_lease l USING done d
    WHERE l.worker_id = d.worker_id AND l.step_id = d.id
),
history AS (
    INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                         finished_at, outcome, log)
    SELECT id, run_id, attempt, worker_id, lease_token, started_at, finished_at,
           'completed', log
    FROM done
    WHERE log IS NOT NULL
),
events AS (
    INSERT INTO event (kind, run_id, step, group_name, data, at)
    SELECT 'step.completed', d.run_id, d.name, r.group_name,
           jsonb_build_object('attempt', d.attempt), d.finished_at
    FROM done d
    JOIN run r ON r.id = d.run_id
)
SELECT id, run_id, dependents, lease_token, locked FROM done
