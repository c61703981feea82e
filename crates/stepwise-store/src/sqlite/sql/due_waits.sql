-- ?1 most: waits whose time passed (database clock), oldest deadline first.
SELECT id, run_id FROM step
WHERE wait_until <= (SELECT now_ms FROM db_clock)
ORDER BY wait_until
LIMIT ?1
