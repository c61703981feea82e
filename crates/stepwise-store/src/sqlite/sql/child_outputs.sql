-- ?1 run id: a completed child's final outputs, `{"step": output}` of its last steps
-- (those no step of its own waits for).
SELECT coalesce(json_group_object(name, json(coalesce(output, 'null'))), '{}') AS outputs
FROM step
WHERE run_id = ?1 AND json_array_length(dependents) = 0 AND compensates IS NULL
  AND item_of IS NULL
