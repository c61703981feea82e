-- ?1 run id: the items of its expanded steps, counted by status, and once with
-- no status each expanded step that has no items (an empty array): it counts 0.
SELECT item_of, status, count(*) AS n
FROM step
WHERE run_id = ?1 AND item_of IS NOT NULL
GROUP BY item_of, status
UNION ALL
SELECT id AS item_of, NULL AS status, 0 AS n
FROM step
WHERE run_id = ?1 AND items_total = 0
