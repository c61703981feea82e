-- $1 run id: what a retry needs to know of each step.
SELECT id, name, status, dependents, compensates IS NOT NULL AS compensation,
       item_of, item_index, for_each IS NOT NULL AS fans_out,
       items_total IS NOT NULL AS expanded,
       (for_each ->> 'max_parallel')::integer AS max_parallel
FROM step
WHERE run_id = $1
ORDER BY seq
