-- ?1 step id (just made claimable by a completion in this transaction), ?2 worker
-- id. The pipeline hand-off: `claim_step.sql` with the checks of any claim (the step
-- is still pending, the worker alive, the queue not paused), same columns.
UPDATE step
SET status = 'running',
    attempt = attempt + 1,
    worker_id = ?2,
    lease_token = randomblob(16),
    started_at = (SELECT now_ms FROM db_clock),
    run_after = NULL
WHERE id = ?1
  AND status = 'pending'
  AND resource IS NULL
  AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = step.queue AND q.paused)
  AND EXISTS (SELECT 1 FROM worker w
              WHERE w.id = ?2 AND w.status = 'alive'
                AND w.expires_at > (SELECT now_ms FROM db_clock))
RETURNING seq, id, name, queue, attempt, max_attempts + attempt_base AS max_attempts,
          lease_token, priority, compensates
