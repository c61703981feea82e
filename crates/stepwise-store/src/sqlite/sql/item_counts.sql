-- ?1 run id: the items of its expanded steps, counted by status.
SELECT item_of, status, count(*) AS n
FROM step
WHERE run_id = ?1 AND item_of IS NOT NULL
GROUP BY item_of, status
