-- ?1 JSON array of just-completed step seqs: each closes one step of its run. The
-- write that takes steps_open to 0 finishes the run.
UPDATE run
SET steps_open = steps_open - c.n,
    status = CASE WHEN steps_open - c.n = 0 THEN coalesce(halt, 'completed') ELSE status END,
    finished_at = CASE WHEN steps_open - c.n = 0 THEN (SELECT now_ms FROM db_clock) ELSE finished_at END
FROM (
    SELECT s.run_id AS id, count(*) AS n
    FROM json_each(?1) j
    JOIN step s ON s.seq = j.value
    GROUP BY s.run_id
) AS c
WHERE run.id = c.id
RETURNING run.id, run.status, run.group_name, run.steps_open
