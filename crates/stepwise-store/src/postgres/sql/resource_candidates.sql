-- $1 queue, $2 limit, $3 worker id: claimable steps that need a resource lock whose
-- lock looks free, best first. Candidates only: the lock is taken row by row.
SELECT s.id, s.resource
FROM step s
WHERE s.status = 'pending' AND s.resource IS NOT NULL AND s.queue = $1
  AND NOT EXISTS (SELECT 1 FROM resource_lock l
                  WHERE l.name = s.resource AND l.expires_at > (SELECT stepwise_now()))
  AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = $1 AND q.paused)
  AND EXISTS (SELECT 1 FROM worker w
              WHERE w.id = $3 AND w.status = 'alive' AND w.expires_at > (SELECT stepwise_now()))
ORDER BY s.priority DESC, s.seq
LIMIT $2
