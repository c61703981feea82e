-- $1 step ids, $2 lease tokens. Back to pending at once (a ready row, the lease row
-- gone); the attempt is not counted.
-- A step of a halting run is skipped instead: nothing of that run starts again (for
-- a compensation: of a run that gave up compensating).
-- Run `lock_leased_steps.sql` first in the same transaction.
WITH released AS (
    UPDATE step s
    SET status = CASE WHEN (s.compensates IS NULL AND r.halt IS NOT NULL)
                           OR (s.compensates IS NOT NULL AND r.no_compensate)
                      THEN 'skipped' ELSE 'pending' END,
        finished_at = CASE WHEN (s.compensates IS NULL AND r.halt IS NOT NULL)
                                OR (s.compensates IS NOT NULL AND r.no_compensate)
                           THEN (SELECT stepwise_now()) ELSE s.finished_at END,
        attempt = s.attempt - 1
    FROM unnest($1::uuid[], $2::uuid[]) AS i(id, token), run r
    WHERE s.id = i.id AND s.lease_token = i.token AND s.status = 'running'
      AND r.id = s.run_id
    RETURNING s.id, s.run_id, s.name, s.attempt + 1 AS number, s.worker_id,
              s.lease_token, s.started_at, s.status, r.group_name, r.halt,
              s.queue, s.priority, s.seq, s.resource, s.rate_key, s.fair_key
),
unleased AS (
    DELETE FROM step_lease l USING released x
    WHERE l.worker_id = x.worker_id AND l.step_id = x.id
),
ready AS (
    INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
    SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM released WHERE status = 'pending'
),
history AS (
    INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                         outcome, finished_at)
    SELECT id, run_id, number, worker_id, lease_token, started_at, 'released',
           (SELECT stepwise_now())
    FROM released
),
events AS (
    INSERT INTO event (kind, run_id, step, group_name, data, at)
    SELECT e.kind, e.run_id, e.name, e.group_name, e.data, (SELECT stepwise_now())
    FROM (
        SELECT x.id, 1 AS ord, 'step.released' AS kind, x.run_id, x.name, x.group_name,
               jsonb_build_object('attempt', x.number) AS data
        FROM released x
        UNION ALL
        SELECT x.id, 2, 'step.skipped', x.run_id, x.name, x.group_name,
               jsonb_build_object('reason', 'run ' || coalesce(x.halt, 'stopped compensating'))
        FROM released x
        WHERE x.status = 'skipped'
    ) e
    ORDER BY e.id, e.ord
)
SELECT id, run_id, status, lease_token FROM released
