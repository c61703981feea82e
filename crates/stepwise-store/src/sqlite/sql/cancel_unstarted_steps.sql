-- ?1 run id: steps that have not started never will.
UPDATE step
SET status = 'cancelled', finished_at = (SELECT now_ms FROM db_clock),
    wait_kind = NULL, wait_signal = NULL, wait_until = NULL, callback_hash = NULL
WHERE run_id = ?1 AND status IN ('blocked', 'pending', 'scheduled', 'waiting')
RETURNING seq, name
