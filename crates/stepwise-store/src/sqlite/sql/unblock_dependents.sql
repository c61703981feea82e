-- ?1 JSON array of just-completed step seqs. Each dependent loses one dependency
-- per completed step naming it; the decrement that reaches 0 makes it claimable.
-- Skipped steps (run failing) stay skipped.
UPDATE step
SET deps_remaining = deps_remaining - d.n,
    status = CASE WHEN deps_remaining - d.n = 0 THEN 'pending' ELSE status END
FROM (
    SELECT unhex(dep.value) AS id, count(*) AS n
    FROM json_each(?1) j
    JOIN step s ON s.seq = j.value
    JOIN json_each(s.dependents) dep
    GROUP BY dep.value
) AS d
WHERE step.id = d.id AND step.status = 'blocked'
RETURNING seq, id, queue, status, resource IS NOT NULL AS needs_lock
