-- $1 run ids, one entry per step of that run that just reached a terminal state.
-- The transaction that takes steps_open to 0 decides how the run ends and writes its
-- event: a run stopping early with completed compensable steps starts compensating
-- (the caller inserts the compensation steps); a compensating run ends compensated
-- only if every compensation completed.
WITH closed AS (
    SELECT run_id, count(*)::integer AS n
    FROM unnest($1::uuid[]) AS run_id
    GROUP BY run_id
),
locked AS (
    SELECT r.id FROM run r JOIN closed c ON c.run_id = r.id ORDER BY r.id FOR UPDATE OF r
),
decided AS (
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
    FROM run r
    JOIN closed c ON c.run_id = r.id
    JOIN locked l ON l.id = r.id
),
updated AS (
    UPDATE run r
    SET steps_open = d.open,
        status = d.status,
        deadline_at = CASE WHEN d.open = 0 THEN NULL ELSE r.deadline_at END,
        finished_at = CASE WHEN d.open = 0 AND d.status <> 'compensating'
                           THEN stepwise_now() ELSE r.finished_at END
    FROM decided d
    WHERE r.id = d.id
    RETURNING r.id, r.status, r.group_name, r.steps_open, r.error
),
events AS (
    INSERT INTO event (kind, run_id, group_name, data)
    SELECT 'run.' || u.status, u.id, u.group_name,
           CASE WHEN u.error IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('error', u.error) END
    FROM updated u
    WHERE u.steps_open = 0
)
SELECT id, status, group_name FROM updated WHERE steps_open = 0
