-- $1 step id, $2 error: the step failed for good.
UPDATE step
SET status = 'failed', error = $2, finished_at = (SELECT stepwise_now())
WHERE id = $1
