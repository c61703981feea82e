-- ?1 run id: what stopping or retrying it needs, and whether its deadline passed.
SELECT status, workflow, workflow_version, group_name,
       coalesce(deadline_at <= (SELECT now_ms FROM db_clock), 0) AS overdue
FROM run
WHERE id = ?1
