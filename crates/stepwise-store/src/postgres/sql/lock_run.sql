-- $1 run id: the run, locked, and whether its deadline has passed.
SELECT status, workflow, workflow_version,
       coalesce(deadline_at <= (SELECT stepwise_now()), false) AS overdue
FROM run
WHERE id = $1
FOR UPDATE
