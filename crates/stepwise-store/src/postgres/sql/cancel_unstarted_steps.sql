-- $1 run id: steps that have not started never will. Their ready rows go too (a
-- row another claimer holds is left to it: that claim deletes it and finds the step
-- cancelled), and a scheduled step leaves step_due.
WITH cancelled AS (
    UPDATE step
    SET status = 'cancelled', finished_at = (SELECT stepwise_now()), run_after = NULL,
        wait_kind = NULL, wait_signal = NULL, wait_until = NULL, callback_hash = NULL
    WHERE run_id = $1 AND status IN ('blocked', 'pending', 'scheduled', 'waiting')
    RETURNING name, seq, queue, priority, id
),
unready AS (
    DELETE FROM step_ready
    WHERE ctid = ANY (ARRAY(
        SELECT r.ctid FROM step_ready r
        JOIN cancelled c ON r.queue = c.queue AND r.priority = c.priority AND r.seq = c.seq
                        AND r.step_id = c.id
        FOR UPDATE OF r SKIP LOCKED))
)
SELECT name FROM cancelled ORDER BY seq
