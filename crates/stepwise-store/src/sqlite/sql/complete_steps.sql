-- ?1 JSON array of {"id", "token"} (hex) and "output". Only steps still running
-- under the named lease change (fencing); the caller reports the others as refused.
-- A revoked lease (run cancelled or timed out) is not current either.
UPDATE step
SET status = 'completed', output = i.output, finished_at = (SELECT now_ms FROM db_clock)
FROM (
    SELECT unhex(j.value ->> '$.id') AS id,
           unhex(j.value ->> '$.token') AS token,
           j.value -> '$.output' AS output
    FROM json_each(?1) j
) AS i
WHERE step.id = i.id AND step.lease_token = i.token AND step.status = 'running'
  AND step.revoked_at IS NULL
RETURNING step.seq, step.id, step.lease_token, step.run_id,
          step.resource IS NOT NULL AS locked, step.dependents
