-- $1 step id (locked, running), $2 wait kind, $3 signal name, $4 until: the step
-- waits. Its lease row goes (the worker no longer runs it); its lease token stays on
-- the step, so the wait's end is recorded through the ordinary completion path.
WITH parked AS (
    UPDATE step
    SET status = 'waiting', wait_kind = $2, wait_signal = $3, wait_until = $4
    WHERE id = $1
    RETURNING id, worker_id
)
DELETE FROM step_lease l USING parked p
WHERE l.worker_id = p.worker_id AND l.step_id = p.id
