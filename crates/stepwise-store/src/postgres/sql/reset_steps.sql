-- $1 ids, $2 statuses, $3 join counters: steps reopened by a retry, with a fresh
-- attempt budget (the attempt number goes on, so old attempts keep their numbers).
-- A completed step's clean success has no attempt row (the step row held it): it is
-- written now, before the reset clears the step, so its history keeps it. Steps
-- claimable at once get their ready row.
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::integer[]) AS i(id, status, deps)
),
kept AS (
    INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                         finished_at, outcome)
    SELECT s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, s.started_at,
           s.finished_at, 'completed'
    FROM step s
    JOIN input i ON i.id = s.id
    WHERE s.status = 'completed'
      AND NOT EXISTS (SELECT 1 FROM attempt a
                      WHERE a.run_id = s.run_id AND a.step_id = s.id
                        AND a.number = s.attempt AND a.outcome = 'completed')
    ORDER BY s.finished_at, s.seq
),
reset AS (
    UPDATE step s
    SET status = i.status, deps_remaining = i.deps, attempt_base = s.attempt,
        output = NULL, error = NULL, worker_id = NULL, lease_token = NULL,
        started_at = NULL, finished_at = NULL, run_after = NULL, revoked_at = NULL
    FROM input i
    WHERE s.id = i.id
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.rate_key, s.fair_key, s.status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM reset WHERE status = 'pending'
