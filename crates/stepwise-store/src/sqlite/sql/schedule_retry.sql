-- ?1 step id, ?2 delay in ms, ?3 error. A zero delay goes straight to the claim index.
UPDATE step
SET status = CASE WHEN ?2 = 0 THEN 'pending' ELSE 'scheduled' END,
    run_after = (SELECT now_ms FROM db_clock) + ?2,
    error = ?3
WHERE id = ?1
RETURNING run_after
