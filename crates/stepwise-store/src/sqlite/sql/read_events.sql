-- One writer at a time: sequence order is commit order, so "after seq" is safe.
SELECT seq, kind, run_id, step, group_name, at, data
FROM event
WHERE seq > ?1 AND (?2 IS NULL OR run_id = ?2)
ORDER BY seq
LIMIT ?3
