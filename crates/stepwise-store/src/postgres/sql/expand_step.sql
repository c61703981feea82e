-- $1 step id, $2 items, $3 cursor (max_parallel) or NULL, $4 the dependency the
-- array came from (NULL: the input), $5 its path in that output. The step becomes the join
-- of its items: blocked on all of them, holding no lease (a claim that found it
-- gives it up here), with its dependencies' names kept for its items' claims. Its
-- items count among the run's open steps.
WITH unleased AS (
    DELETE FROM step_lease l
    USING step s
    WHERE s.id = $1 AND l.worker_id = s.worker_id AND l.step_id = s.id
),
deps AS (
    SELECT coalesce(array_agg(d.name ORDER BY d.seq), '{}') AS names
    FROM step s
    JOIN step d ON d.run_id = s.run_id AND s.id = ANY (d.dependents)
    WHERE s.id = $1
),
expanded AS (
    UPDATE step s
    SET status = 'blocked', items_total = $2, deps_remaining = $2, item_cursor = $3,
        item_deps = (SELECT names FROM deps), item_source = $4, item_path = $5,
        worker_id = NULL, lease_token = NULL,
        started_at = NULL
    WHERE s.id = $1
    RETURNING s.run_id
)
UPDATE run r
SET steps_total = r.steps_total + $2, steps_open = r.steps_open + $2
FROM expanded e
WHERE r.id = e.run_id
