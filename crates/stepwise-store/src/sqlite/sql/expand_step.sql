-- ?1 step id, ?2 items, ?3 cursor (max_parallel) or NULL, ?4 the dependency the
-- array came from (NULL: the input), ?5 its JSON path in that output. The step becomes the join
-- of its items: blocked on all of them, holding no lease (a claim that found it
-- gives it up here), with its items' context built.
UPDATE step
SET status = 'blocked', items_total = ?2, deps_remaining = ?2, item_cursor = ?3,
    -- What every item's context carries: the step's dependency outputs, built once,
    -- with the array left out of its source's output (each item has its element).
    item_context = (SELECT coalesce(json_group_object(
                                d.name,
                                CASE WHEN ?4 IS NULL OR d.name <> ?4
                                         THEN json(coalesce(d.output, 'null'))
                                     WHEN ?5 = '$' THEN json('null')
                                     ELSE json_remove(coalesce(d.output, 'null'), ?5) END),
                            '{}')
                    FROM step d, json_each(d.dependents) x
                    WHERE d.run_id = step.run_id AND x.value = lower(hex(step.id))),
    worker_id = NULL, lease_token = NULL, started_at = NULL
WHERE id = ?1
RETURNING run_id
