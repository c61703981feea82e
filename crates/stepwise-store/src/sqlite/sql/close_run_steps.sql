-- ?2 steps of run ?1 just reached a terminal state. The write that takes
-- steps_open to 0 finishes the run.
UPDATE run
SET steps_open = steps_open - ?2,
    status = CASE WHEN steps_open - ?2 = 0 THEN coalesce(halt, 'completed') ELSE status END,
    finished_at = CASE WHEN steps_open - ?2 = 0 THEN (SELECT now_ms FROM db_clock) ELSE finished_at END
WHERE id = ?1
RETURNING id, status, group_name, steps_open
