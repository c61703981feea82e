-- $1 run id: steps that have not started never will.
UPDATE step
SET status = 'cancelled', finished_at = (SELECT stepwise_now())
WHERE run_id = $1 AND status IN ('blocked', 'pending', 'scheduled')
RETURNING name
