-- ?1 run id: its child runs that have not ended, oldest first.
SELECT id FROM run
WHERE parent_run = ?1 AND status IN ('pending', 'running', 'compensating')
ORDER BY seq
