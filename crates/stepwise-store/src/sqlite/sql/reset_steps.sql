-- ?1 JSON array of {"id" (hex), "status", "deps"}: steps reopened by a retry, with a
-- fresh attempt budget (the attempt number goes on, so old attempts keep their
-- numbers).
UPDATE step
SET status = i.status, deps_remaining = i.deps, attempt_base = step.attempt,
    output = NULL, error = NULL, worker_id = NULL, lease_token = NULL,
    started_at = NULL, finished_at = NULL, run_after = NULL, revoked_at = NULL
FROM (
    SELECT unhex(j.value ->> '$.id') AS id, j.value ->> '$.status' AS status,
           j.value ->> '$.deps' AS deps
    FROM json_each(?1) j
) AS i
WHERE step.id = i.id
