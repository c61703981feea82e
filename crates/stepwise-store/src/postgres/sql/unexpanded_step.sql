-- $1 step id: a `for_each` step whose array cannot be expanded, with its run (both
-- locked, step before run), to fail it for good.
SELECT s.run_id, s.name, s.attempt, r.group_name
FROM step s
JOIN run r ON r.id = s.run_id
WHERE s.id = $1
FOR UPDATE OF s, r
