-- ?1 limit: runs whose deadline passed, oldest deadline first (a run waiting for its
-- key's slot too: its deadline counts from creation). The caller stops them in the
-- same write transaction, which clears the deadline, so each fires once.
SELECT id FROM run
WHERE deadline_at <= (SELECT now_ms FROM db_clock) AND status IN ('pending', 'running')
ORDER BY deadline_at, seq
LIMIT ?1
