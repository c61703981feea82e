-- $1 run id, $2 step name or NULL: where a `for_each` path starts (the run's input,
-- or that step's output).
SELECT CASE WHEN $2::text IS NULL THEN (SELECT r.input FROM run r WHERE r.id = $1)
            ELSE (SELECT s.output FROM step s WHERE s.run_id = $1 AND s.name = $2)
       END AS root
