-- $1 step id (pending, needing a resource whose lock the caller just took),
-- $2 limit (1), $3 worker id. `claim_steps.sql` for one given step: its ready rows
-- are found through the step's own key (queue, priority, seq) in the resource index.
-- A ready row another claimer holds is skipped: that claimer takes the step.
WITH picked AS (
    SELECT r.ctid AS rid, r.step_id
    FROM step s
    JOIN step_ready r ON r.queue = s.queue AND r.priority = s.priority AND r.seq = s.seq
                     AND r.step_id = s.id AND r.resource IS NOT NULL
    WHERE s.id = $1
      AND s.status = 'pending'
      AND EXISTS (SELECT 1 FROM worker w
                  WHERE w.id = $3 AND w.status = 'alive' AND w.expires_at > (SELECT stepwise_now()))
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
),
taken AS (
    DELETE FROM step_ready WHERE ctid = ANY (ARRAY(SELECT rid FROM picked))
),
claimed AS (
    UPDATE step s
    SET status = 'running',
        attempt = s.attempt + 1,
        worker_id = $3,
        lease_token = gen_random_uuid(),
        started_at = (SELECT stepwise_now())
    FROM (SELECT DISTINCT step_id FROM picked) p
    WHERE s.id = p.step_id AND s.status = 'pending'
    RETURNING s.id, s.seq, s.run_id, s.name, s.queue, s.priority, s.attempt, s.started_at,
              s.max_attempts + s.attempt_base AS max_attempts, s.lease_token, s.compensates,
              s.item_of, s.item_index, s.item,
              s.for_each IS NOT NULL AND s.items_total IS NULL AS expands
),
leased AS (
    INSERT INTO step_lease (worker_id, step_id, token)
    SELECT $3, id, lease_token FROM claimed
    ON CONFLICT (worker_id, step_id) DO UPDATE SET token = EXCLUDED.token
),
joined AS (
    SELECT c.*, r.workflow, r.workflow_version, r.input, r.group_name, r.error
    FROM claimed c
    JOIN run r ON r.id = c.run_id
),
started AS (
    INSERT INTO event (kind, run_id, step, group_name, data, at)
    SELECT 'step.started', j.run_id, j.name, j.group_name,
           jsonb_build_object('attempt', j.attempt, 'worker_id', $3::uuid), j.started_at
    FROM joined j
    WHERE NOT j.expands
)
SELECT j.id, j.run_id, j.name, j.queue, j.attempt, j.max_attempts, j.lease_token,
       j.workflow, j.workflow_version, j.input,
       (SELECT expires_at FROM worker WHERE id = $3) AS lease_expires_at,
       CASE WHEN j.item_of IS NULL THEN
           (SELECT coalesce(jsonb_object_agg(d.name, coalesce(d.output, 'null'::jsonb)), '{}')
            FROM step d
            WHERE d.run_id = j.run_id AND j.id = ANY (d.dependents))
       ELSE
           -- An item's context is its step's, built once at expansion.
           (SELECT p.item_context FROM step p WHERE p.id = j.item_of)
       END AS dependency_outputs,
       j.compensates,
       (SELECT o.output FROM step o
        WHERE o.run_id = j.run_id AND o.name = j.compensates) AS compensated_output,
       j.error AS run_error,
       -- A compensation of an item undoes that item: it gets the item's element.
       CASE WHEN j.compensates IS NULL THEN j.item_index
            ELSE (SELECT o.item_index FROM step o
                  WHERE o.run_id = j.run_id AND o.name = j.compensates) END AS item_index,
       CASE WHEN j.compensates IS NULL THEN j.item
            ELSE (SELECT o.item FROM step o
                  WHERE o.run_id = j.run_id AND o.name = j.compensates) END AS item,
       j.expands
FROM joined j
ORDER BY j.priority DESC, j.seq
