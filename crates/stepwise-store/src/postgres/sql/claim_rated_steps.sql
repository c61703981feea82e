-- $1 queue, $2 limit (what the key admits), $3 worker id, $4 the rate key whose
-- steps are picked, $5 where its admissions count from (its TAT, or now), $6 its
-- interval in microseconds. The key (locked by `rate_keys.sql`) moves on by what
-- was picked, in this statement: a picked step that is no longer pending (rare: a
-- racing duplicate) only makes the key more careful. The statement goes on in
-- `claim_tail.sql`.
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
      AND r.rate_key = $4
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
-- A `for_each` step's own claim expands it and starts no work: only its items'
-- starts count against the key.
starts AS (
    SELECT p.step_id FROM picked p
    WHERE (SELECT s.for_each IS NULL OR s.items_total IS NOT NULL
           FROM step s WHERE s.id = p.step_id)
),
advanced AS (
    UPDATE rate_limit
    SET tat = $5::timestamptz + (SELECT count(*) FROM starts) * $6::bigint * interval '1 microsecond',
        admitted = admitted + (SELECT count(*) FROM starts),
        last_admitted = (SELECT stepwise_now())
    WHERE key = $4 AND EXISTS (SELECT 1 FROM starts)
),
