-- ?1 run id: steps that have not started never will.
UPDATE step
SET status = 'cancelled', finished_at = (SELECT now_ms FROM db_clock)
WHERE run_id = ?1 AND status IN ('blocked', 'pending', 'scheduled')
RETURNING seq, name
