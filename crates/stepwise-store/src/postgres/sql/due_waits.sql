-- $1 most: waits whose time passed (database clock), oldest deadline first.
SELECT id, run_id FROM step
WHERE wait_until <= (SELECT stepwise_now())
ORDER BY wait_until
LIMIT $1
