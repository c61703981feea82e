-- $1 queue, $2 limit, $3 worker id: claimable steps that need a resource lock whose
-- lock looks free, best first. Candidates only: the lock is taken row by row.
-- A step's status is read per ready row (a sub-plan, one primary-key probe each). A
-- duplicate ready row names the same resource and is passed over by the caller.
SELECT r.step_id AS id, r.resource
FROM step_ready r
WHERE r.resource IS NOT NULL AND r.queue = $1
  AND (SELECT s.status FROM step s WHERE s.id = r.step_id) = 'pending'
  AND NOT EXISTS (SELECT 1 FROM resource_lock l
                  WHERE l.name = r.resource AND l.expires_at > (SELECT stepwise_now()))
  AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = $1 AND q.paused)
  AND EXISTS (SELECT 1 FROM worker w
              WHERE w.id = $3 AND w.status = 'alive' AND w.expires_at > (SELECT stepwise_now()))
ORDER BY r.priority DESC, r.seq
LIMIT $2
