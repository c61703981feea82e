-- ?1 limit: runs whose deadline passed, oldest deadline first. The caller stops
-- them in the same write transaction, which clears the deadline, so each fires once.
SELECT id FROM run
WHERE deadline_at <= (SELECT now_ms FROM db_clock) AND status = 'running'
ORDER BY deadline_at, seq
LIMIT ?1
