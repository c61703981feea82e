-- $1 workflow, $2 schedule names: the workflow's schedules and any other with one of
-- those names, locked (two applies of one file serialize here).
SELECT name, workflow, spec FROM schedule
WHERE workflow = $1 OR name = ANY ($2)
ORDER BY name
FOR UPDATE
