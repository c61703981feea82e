-- ?1 JSON array of run ids (hex), one entry per step of that run that just reached a
-- terminal state. The write that takes steps_open to 0 decides how the run ends: a
-- run stopping early with completed compensable steps starts compensating (the
-- caller inserts the compensation steps); a compensating run ends compensated only
-- if every compensation completed.
UPDATE run
SET steps_open = d.open,
    status = d.status,
    deadline_at = CASE WHEN d.open = 0 THEN NULL ELSE run.deadline_at END,
    finished_at = CASE WHEN d.open = 0 AND d.status <> 'compensating'
                       THEN (SELECT now_ms FROM db_clock) ELSE run.finished_at END
FROM (
    SELECT r.id, r.steps_open - c.n AS open,
           CASE
               WHEN r.steps_open - c.n > 0 THEN r.status
               WHEN r.status = 'compensating' THEN
                   CASE WHEN EXISTS (SELECT 1 FROM step x
                                     WHERE x.run_id = r.id AND x.compensates IS NOT NULL
                                       AND x.status <> 'completed')
                        THEN 'compensation_failed' ELSE 'compensated' END
               WHEN r.halt IS NOT NULL AND NOT r.no_compensate
                    AND EXISTS (SELECT 1 FROM step x
                                WHERE x.run_id = r.id AND x.compensates IS NULL
                                  AND x.compensable AND x.status = 'completed')
                   THEN 'compensating'
               ELSE coalesce(r.halt, 'completed')
           END AS status
    FROM (SELECT unhex(j.value) AS id, count(*) AS n
          FROM json_each(?1) j
          GROUP BY j.value) AS c
    JOIN run r ON r.id = c.id
) AS d
WHERE run.id = d.id
RETURNING run.id, run.status, run.group_name, run.steps_open, run.error, run.halt,
          run.holds_slot, run.parent_run, run.parent_step
