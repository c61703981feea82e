-- $1 ids, $2 statuses, $3 join counters: steps reopened by a retry, with a fresh
-- attempt budget (the attempt number goes on, so old attempts keep their numbers).
-- Those that are claimable at once get their ready row.
WITH reset AS (
    UPDATE step s
    SET status = i.status, deps_remaining = i.deps, attempt_base = s.attempt,
        output = NULL, error = NULL, worker_id = NULL, lease_token = NULL,
        started_at = NULL, finished_at = NULL, run_after = NULL, revoked_at = NULL
    FROM unnest($1::uuid[], $2::text[], $3::integer[]) AS i(id, status, deps)
    WHERE s.id = i.id
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource)
SELECT queue, priority, seq, id, resource FROM reset WHERE status = 'pending'
