-- ?1 queue, ?2 limit (what the key admits), ?3 worker id, ?4 the rate key whose steps
-- are claimed (`claim_steps.sql` claims the steps of no key). The write lock (BEGIN IMMEDIATE) makes the
-- pick and the update one atomic step, so IN (subquery) cannot over-claim here.
-- The budget since the run's latest retry is what the worker sees as max_attempts.
-- Steps needing a resource lock are claimed by `claim_step.sql`, with their lock;
-- a paused queue's steps wait.
UPDATE step
SET status = 'running',
    attempt = attempt + 1,
    worker_id = ?3,
    lease_token = randomblob(16),
    started_at = (SELECT now_ms FROM db_clock),
    run_after = NULL
WHERE seq IN (
    SELECT seq FROM step
    WHERE status = 'pending'
      AND queue = ?1
      AND rate_key = ?4
      AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = ?1 AND q.paused)
      AND EXISTS (SELECT 1 FROM worker w
                  WHERE w.id = ?3 AND w.status = 'alive'
                    AND w.expires_at > (SELECT now_ms FROM db_clock))
    ORDER BY priority DESC, seq
    LIMIT ?2
)
RETURNING seq, id, name, queue, attempt, max_attempts + attempt_base AS max_attempts,
          lease_token, priority, compensates,
          for_each IS NOT NULL AND items_total IS NULL AS expands
