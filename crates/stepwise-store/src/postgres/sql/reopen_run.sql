-- $1 run id, $2 status ('running', or 'compensating' to resume a compensation),
-- $3 open steps, $4 the workflow's deadline in ms (counted again from now) or NULL.
UPDATE run
SET status = $2,
    halt = CASE WHEN $2 = 'running' THEN NULL ELSE halt END,
    error = CASE WHEN $2 = 'running' THEN NULL ELSE error END,
    no_compensate = false,
    steps_open = $3,
    finished_at = NULL,
    deadline_at = CASE WHEN $2 = 'running'
                       THEN (SELECT stepwise_now()) + $4::bigint * interval '1 millisecond' END
WHERE id = $1
RETURNING group_name
