-- $1 run id: locks the run's unfinished steps in id order, before the run (the order
-- outcomes take: step, then run).
SELECT id FROM step
WHERE run_id = $1 AND status IN ('blocked', 'pending', 'scheduled', 'running', 'waiting')
ORDER BY id
FOR UPDATE
