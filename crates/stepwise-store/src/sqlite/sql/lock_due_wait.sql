-- ?1 step id: the step, if it still waits and its time passed (another waker that
-- got there first leaves nothing to do).
SELECT wait_kind, wait_signal FROM step
WHERE id = ?1 AND status = 'waiting' AND wait_until <= (SELECT now_ms FROM db_clock)
