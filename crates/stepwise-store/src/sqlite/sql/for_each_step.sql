-- ?1 run id, ?2 step name: the run's `for_each` step of that name, and its items
-- by status.
SELECT p.id, s.status, count(s.id) AS n
FROM step p
LEFT JOIN step s ON s.item_of = p.id
WHERE p.run_id = ?1 AND p.name = ?2 AND p.for_each IS NOT NULL
GROUP BY p.id, s.status
