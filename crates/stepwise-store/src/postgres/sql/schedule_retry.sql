-- $1 step id, $2 delay in ms, $3 error. A zero delay goes straight to the claim index.
UPDATE step
SET status = CASE WHEN $2::bigint = 0 THEN 'pending' ELSE 'scheduled' END,
    run_after = (SELECT stepwise_now()) + $2::bigint * interval '1 millisecond',
    error = $3
WHERE id = $1
RETURNING run_after
