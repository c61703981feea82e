-- ?1 step id (pending, needing the resource whose lock the caller just took),
-- ?2 worker id. `claim_steps.sql` for one given step, with the same columns.
UPDATE step
SET status = 'running',
    attempt = attempt + 1,
    worker_id = ?2,
    lease_token = randomblob(16),
    started_at = (SELECT now_ms FROM db_clock),
    run_after = NULL
WHERE id = ?1
  AND status = 'pending'
  AND EXISTS (SELECT 1 FROM worker w
              WHERE w.id = ?2 AND w.status = 'alive'
                AND w.expires_at > (SELECT now_ms FROM db_clock))
RETURNING seq, id, name, queue, attempt, max_attempts + attempt_base AS max_attempts,
          lease_token, priority, compensates
