-- $1 run id, $2 reason ('failed'), $3 error. The first reason wins; unstarted steps
-- are skipped so that nothing of the run is claimed again.
WITH halted AS (
    UPDATE run
    SET halt = coalesce(halt, $2), error = coalesce(error, $3)
    WHERE id = $1
    RETURNING id
)
UPDATE step s
SET status = 'skipped', finished_at = (SELECT stepwise_now())
FROM halted
WHERE s.run_id = halted.id AND s.status IN ('blocked', 'pending', 'scheduled')
RETURNING s.name
