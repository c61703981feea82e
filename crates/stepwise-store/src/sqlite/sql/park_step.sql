-- ?1 step id (running under a current lease), ?2 wait kind, ?3 signal name, ?4 until
-- (ms): the step waits and no worker runs it. Its lease token stays on the step, so
-- the wait's end is recorded through the ordinary completion path.
UPDATE step
SET status = 'waiting', wait_kind = ?2, wait_signal = ?3, wait_until = ?4
WHERE id = ?1
