-- ?1 run id: what a retry needs to know of each step.
SELECT id, name, status, dependents, compensates IS NOT NULL AS compensation
FROM step
WHERE run_id = ?1
ORDER BY seq
