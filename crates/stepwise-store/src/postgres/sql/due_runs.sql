-- $1 limit: runs whose deadline passed, oldest deadline first. Candidates only: the
-- caller locks each and checks again, so a deadline fires once.
SELECT id FROM run
WHERE deadline_at <= (SELECT stepwise_now()) AND status IN ('pending', 'running')
ORDER BY deadline_at
LIMIT $1
