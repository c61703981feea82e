-- ?1 run, ?2 step name, ?3 attempt number or NULL for all.
SELECT a.number, a.outcome, a.log
FROM attempt a
JOIN step s ON s.id = a.step_id
WHERE s.run_id = ?1 AND s.name = ?2 AND (?3 IS NULL OR a.number = ?3)
ORDER BY a.seq
