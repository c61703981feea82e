-- $1 queue, $2 limit, $3 worker id, $4 fairness keys, $5 how many of each: one
-- statement for every key's share, least recently served key first (the caller's
-- order). The statement goes on in `claim_tail.sql`.
-- Picks ready rows of pending steps, best first within each key, and deletes them
-- by ctid; `status = 'pending'` is the fence, as in `claim_steps.sql`. The CTE
-- picks and locks at most $2 rows; the statements after it touch exactly those.
WITH picked AS (
    SELECT x.rid, x.step_id
    FROM unnest($4::text[], $5::integer[]) WITH ORDINALITY AS k(key, n, ord)
    CROSS JOIN LATERAL (
        SELECT r.ctid AS rid, r.step_id
        FROM step_ready r
        WHERE r.queue = $1
          AND r.fair_key = k.key AND r.rate_key IS NULL AND r.resource IS NULL
          AND (SELECT s.status FROM step s WHERE s.id = r.step_id) = 'pending'
        ORDER BY r.priority DESC, r.seq
        LIMIT k.n
        FOR UPDATE OF r SKIP LOCKED
    ) x
    WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.name = $1 AND q.paused)
      AND EXISTS (SELECT 1 FROM worker w
                  WHERE w.id = $3 AND w.status = 'alive' AND w.expires_at > (SELECT stepwise_now()))
    ORDER BY k.ord
    LIMIT $2
),
