-- $1 step ids, $2 lease tokens. Back to pending at once; the attempt is not counted.
WITH released AS (
    UPDATE step s
    SET status = 'pending', attempt = s.attempt - 1
    FROM unnest($1::uuid[], $2::uuid[]) AS i(id, token)
    WHERE s.id = i.id AND s.lease_token = i.token AND s.status = 'running'
    RETURNING s.id, s.run_id, s.name, s.attempt + 1 AS number, s.worker_id,
              s.lease_token, s.started_at
),
history AS (
    INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                         outcome)
    SELECT id, run_id, number, worker_id, lease_token, started_at, 'released'
    FROM released
),
events AS (
    INSERT INTO event (kind, run_id, step, group_name, data)
    SELECT 'step.released', x.run_id, x.name, r.group_name,
           jsonb_build_object('attempt', x.number)
    FROM released x
    JOIN run r ON r.id = x.run_id
)
SELECT id FROM released
