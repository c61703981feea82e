-- $1 queue, $2 limit, $3 worker id. The statement goes on in `claim_tail.sql`.
-- Picks ready rows of pending steps, best first, and deletes them by ctid (a TID
-- scan, no index work). The step update is HOT: no index on step names a column it
-- changes. `status = 'pending'` is the fence: two claimers that picked two ready rows
-- of one step (a duplicate) serialize on the step row, and the second finds it
-- running. The lease row is the worker's index of what it runs.
-- The CTE picks and locks at most $2 rows; the statements after it touch exactly
-- those (an IN (subquery) can be re-evaluated and claim more than $2).
WITH picked AS (
    SELECT r.ctid AS rid, r.step_id
    FROM step_ready r
    WHERE r.queue = $1
      AND r.resource IS NULL AND r.rate_key IS NULL AND r.fair_key IS NULL
      -- A sub-plan, one primary-key probe per row in index order: a join could be
      -- planned as a scan of all steps while statistics lag behind a burst. Rows of
      -- steps that left 'pending' (cancelled, skipped) are passed over here and
      -- deleted by whoever made them stale.
      AND (SELECT s.status FROM step s WHERE s.id = r.step_id) = 'pending'
      AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = $1 AND q.paused)
      AND EXISTS (SELECT 1 FROM worker w
                  WHERE w.id = $3 AND w.status = 'alive' AND w.expires_at > (SELECT stepwise_now()))
    ORDER BY r.priority DESC, r.seq
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
),
