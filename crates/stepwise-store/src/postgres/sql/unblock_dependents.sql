-- $1 dependent step ids, one entry per ended dependency (so a step named twice
-- lost two dependencies). Row locks serialize racing decrements; the one that
-- reaches 0 makes an ordinary step pending, tells the caller to expand a
-- `for_each` step (left pending for that), or to join an expanded step (its items
-- are its dependencies; `ended` of them just ended, which frees as many places
-- under max_parallel, from `cursor`). Skipped steps (run failing) stay skipped.
-- The caller hands steps that became pending to the completing worker or gives
-- them their ready rows (`insert_ready_steps.sql`) in the same transaction.
UPDATE step s
SET deps_remaining = s.deps_remaining - d.n,
    status = CASE WHEN s.deps_remaining - d.n = 0 AND s.items_total IS NULL
                  THEN 'pending' ELSE s.status END
FROM (SELECT id, count(*)::integer AS n FROM unnest($1::uuid[]) AS id GROUP BY id) d
WHERE s.id = d.id AND s.status = 'blocked'
-- A step with a resource or a rate limit key is never handed off: its lock or its
-- key must admit it first, through the claim paths.
RETURNING s.id, s.seq, s.queue, s.resource IS NOT NULL OR s.rate_key IS NOT NULL AS needs_lock,
          s.deps_remaining = 0 AND s.items_total IS NULL AND s.for_each IS NULL AS ready,
          s.deps_remaining = 0 AND s.items_total IS NULL AND s.for_each IS NOT NULL
              AS expands,
          s.deps_remaining = 0 AND s.items_total IS NOT NULL AS joined,
          s.item_cursor AS cursor, d.n AS ended
