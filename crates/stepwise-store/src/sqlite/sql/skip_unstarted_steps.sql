-- The run is halting: nothing of it that has not started will start.
UPDATE step SET status = 'skipped', finished_at = (SELECT now_ms FROM db_clock),
    wait_kind = NULL, wait_signal = NULL, wait_until = NULL, callback_hash = NULL
WHERE run_id = ?1 AND status IN ('blocked', 'pending', 'scheduled', 'waiting')
RETURNING name
