-- $1 run ids, one entry per step of that run that just reached a terminal state.
-- The transaction that takes steps_open to 0 decides how the run ends (the caller
-- writes its event): a run stopping early with completed compensable steps starts compensating
-- (the caller inserts the compensation steps); a compensating run ends compensated
-- only if every compensation completed. `holds_slot` tells the caller whether the run
-- has a concurrency slot to give back (read under the run's row lock, so it is current).
WITH closed AS (
    SELECT run_id, count(*)::integer AS n
    FROM unnest($1::uuid[]) AS run_id
    GROUP BY run_id
),
-- Each run is looked up and locked through the id index, one probe per run (LATERAL
-- fixes the plan): a join against `closed` can be planned as a scan of the whole run
-- table when its statistics lag behind a burst of inserts. FOR UPDATE hands back
-- each row's newest version, so the counter read is current.
locked AS (
    SELECT r.id, r.steps_open, r.status, r.halt, r.no_compensate
    FROM (SELECT run_id FROM closed ORDER BY run_id) AS ids
    CROSS JOIN LATERAL (
        SELECT x.id, x.steps_open, x.status, x.halt, x.no_compensate
        FROM run x
        WHERE x.id = ids.run_id
        FOR UPDATE
    ) AS r
),
decided AS (
    SELECT l.id, l.steps_open - c.n AS open,
           CASE
               WHEN l.steps_open - c.n > 0 THEN l.status
               WHEN l.status = 'compensating' THEN
                   CASE WHEN EXISTS (SELECT 1 FROM step x
                                     WHERE x.run_id = l.id AND x.compensates IS NOT NULL
                                       AND x.status <> 'completed')
                        THEN 'compensation_failed' ELSE 'compensated' END
               WHEN l.halt IS NOT NULL AND NOT l.no_compensate
                    AND EXISTS (SELECT 1 FROM step x
                                WHERE x.run_id = l.id AND x.compensates IS NULL
                                  AND x.compensable AND x.status = 'completed')
                   THEN 'compensating'
               ELSE coalesce(l.halt, 'completed')
           END AS status
    FROM locked l
    JOIN closed c ON c.run_id = l.id
),
updated AS (
    UPDATE run r
    SET steps_open = d.open,
        status = d.status,
        -- Unchanged values keep the update HOT: only runs with a deadline or still
        -- in a key's line change an indexed column here.
        deadline_at = CASE WHEN d.open = 0 THEN NULL ELSE r.deadline_at END,
        waiting = CASE WHEN d.open = 0 THEN false ELSE r.waiting END,
        finished_at = CASE WHEN d.open = 0 AND d.status <> 'compensating'
                           THEN (SELECT stepwise_now()) ELSE r.finished_at END
    FROM decided d
    WHERE r.id = ANY ($1::uuid[]) AND r.id = d.id
    RETURNING r.id, r.status, r.group_name, r.steps_open, r.error, r.halt, r.holds_slot,
              r.parent_run, r.parent_step
)
SELECT id, status, group_name, error, halt, holds_slot, parent_run, parent_step
FROM updated WHERE steps_open = 0
