-- ?1 limit: the newest groups first (by sequence, not time).
SELECT name FROM run_group ORDER BY rowid DESC LIMIT ?1
