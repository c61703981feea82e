-- $1 run id: a completed child's final outputs, `{"step": output}` of its last steps
-- (those no step of its own waits for).
SELECT coalesce(jsonb_object_agg(name, coalesce(output, 'null'::jsonb)), '{}') AS outputs
FROM step
WHERE run_id = $1 AND cardinality(dependents) = 0 AND compensates IS NULL
  AND item_of IS NULL
