-- $1 step id, $2 items, $3 cursor (max_parallel) or NULL, $4 the dependency the
-- array came from (NULL: the input), $5 its path in that output. The step becomes the join
-- of its items: blocked on all of them, holding no lease (a claim that found it
-- gives it up here), with its items' context built. Its items count among the
-- run's open steps.
WITH unleased AS (
    DELETE FROM step_lease l
    USING step s
    WHERE s.id = $1 AND l.worker_id = s.worker_id AND l.step_id = s.id
),
-- What every item's context carries: the step's dependency outputs, built once,
-- with the array left out of its source's output (each item has its element).
context AS (
    SELECT coalesce(jsonb_object_agg(
               d.name,
               CASE WHEN d.name IS DISTINCT FROM $4 THEN coalesce(d.output, 'null'::jsonb)
                    WHEN cardinality($5::text[]) = 0 THEN 'null'::jsonb
                    ELSE coalesce(d.output, 'null'::jsonb) #- $5::text[] END),
           '{}') AS outputs
    FROM step s
    JOIN step d ON d.run_id = s.run_id AND s.id = ANY (d.dependents)
    WHERE s.id = $1
),
expanded AS (
    UPDATE step s
    SET status = 'blocked', items_total = $2, deps_remaining = $2, item_cursor = $3,
        item_context = (SELECT outputs FROM context), worker_id = NULL,
        lease_token = NULL, started_at = NULL
    WHERE s.id = $1
    RETURNING s.run_id
)
UPDATE run r
SET steps_total = r.steps_total + $2, steps_open = r.steps_open + $2
FROM expanded e
WHERE r.id = e.run_id
