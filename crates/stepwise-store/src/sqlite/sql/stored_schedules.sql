-- ?1 workflow, ?2 schedule names: the workflow's schedules and any other with one of
-- those names, (the write transaction holds the database lock).
SELECT name, workflow, spec FROM schedule
WHERE workflow = ?1 OR name IN (SELECT value FROM json_each(?2))
ORDER BY name
