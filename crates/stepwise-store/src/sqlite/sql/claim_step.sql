-- ?1 step id, ?2 worker id. `claim_steps.sql` for one given step, with the same
-- columns and checks (still pending, the worker alive, the queue not paused): a step
-- needing the resource whose lock the caller just took, or a step a completion in
-- this transaction just unblocked (the pipeline hand-off, which never chooses a step
-- that needs a lock).
UPDATE step
SET status = 'running',
    attempt = attempt + 1,
    worker_id = ?2,
    lease_token = randomblob(16),
    started_at = (SELECT now_ms FROM db_clock),
    run_after = NULL
WHERE id = ?1
  AND status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = step.queue AND q.paused)
  AND EXISTS (SELECT 1 FROM worker w
              WHERE w.id = ?2 AND w.status = 'alive'
                AND w.expires_at > (SELECT now_ms FROM db_clock))
RETURNING seq, id, name, queue, attempt, max_attempts + attempt_base AS max_attempts,
          lease_token, priority, compensates,
          for_each IS NOT NULL AND items_total IS NULL AS expands
