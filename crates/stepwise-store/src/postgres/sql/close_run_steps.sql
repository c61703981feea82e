-- $1 run ids, one entry per step of that run that just reached a terminal state.
-- The transaction that takes steps_open to 0 finishes the run and writes its event.
WITH closed AS (
    SELECT run_id, count(*)::integer AS n
    FROM unnest($1::uuid[]) AS run_id
    GROUP BY run_id
),
locked AS (
    SELECT r.id FROM run r JOIN closed c ON c.run_id = r.id ORDER BY r.id FOR UPDATE OF r
),
updated AS (
    UPDATE run r
    SET steps_open = r.steps_open - c.n,
        status = CASE WHEN r.steps_open - c.n = 0
                      THEN coalesce(r.halt, 'completed') ELSE r.status END,
        finished_at = CASE WHEN r.steps_open - c.n = 0
                           THEN stepwise_now() ELSE r.finished_at END
    FROM closed c, locked l
    WHERE r.id = c.run_id AND l.id = r.id
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
