-- $1 run id, $2 reason ('failed'), $3 error. The first reason wins; unstarted steps
-- are skipped so that nothing of the run is claimed again. Their ready rows go (a
-- row another claimer holds is left to it: that claim deletes it and finds the step
-- skipped), and a scheduled step leaves step_due.
WITH halted AS (
    UPDATE run
    SET halt = coalesce(halt, $2), error = coalesce(error, $3)
    WHERE id = $1
    RETURNING id
),
skipped AS (
    UPDATE step s
    SET status = 'skipped', finished_at = (SELECT stepwise_now()), run_after = NULL,
        wait_kind = NULL, wait_signal = NULL, wait_until = NULL, callback_hash = NULL
    FROM halted
    WHERE s.run_id = halted.id AND s.status IN ('blocked', 'pending', 'scheduled', 'waiting')
    RETURNING s.name, s.seq, s.queue, s.priority, s.id
),
unready AS (
    DELETE FROM step_ready
    WHERE ctid = ANY (ARRAY(
        SELECT r.ctid FROM step_ready r
        JOIN skipped k ON r.queue = k.queue AND r.priority = k.priority AND r.seq = k.seq
                      AND r.step_id = k.id
        FOR UPDATE OF r SKIP LOCKED))
)
SELECT name FROM skipped ORDER BY seq
