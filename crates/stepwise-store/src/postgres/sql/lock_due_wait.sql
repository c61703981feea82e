-- $1 step id: the step, locked, if it still waits and its time passed. Another
-- waker that got there first leaves nothing to do.
SELECT wait_kind, wait_signal FROM step
WHERE id = $1 AND status = 'waiting' AND wait_until <= (SELECT stepwise_now())
FOR UPDATE
