-- ?1 step id, ?2 items, ?3 cursor (max_parallel) or NULL, ?4 the dependency the
-- array came from (NULL: the input), ?5 its JSON path in that output. The step becomes the join
-- of its items: blocked on all of them, holding no lease (a claim that found it
-- gives it up here), with its dependencies' names kept for its items' claims.
UPDATE step
SET status = 'blocked', items_total = ?2, deps_remaining = ?2, item_cursor = ?3,
    item_deps = (SELECT coalesce(json_group_array(d.name), '[]')
                 FROM (SELECT d.name FROM step d, json_each(d.dependents) x
                       WHERE d.run_id = step.run_id AND x.value = lower(hex(step.id))
                       ORDER BY d.seq) d),
    item_source = ?4, item_path = ?5, worker_id = NULL, lease_token = NULL,
    started_at = NULL
WHERE id = ?1
RETURNING run_id
