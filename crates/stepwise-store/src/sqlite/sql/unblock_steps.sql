-- ?1 JSON array of dependent step ids (hex), one entry per ended dependency. The
-- decrement that reaches 0 makes an ordinary step pending (claimable), tells the
-- caller to expand a `for_each` step (left pending for that), or to join an
-- expanded step (its items are its dependencies). Skipped steps stay skipped.
UPDATE step
SET deps_remaining = deps_remaining - d.n,
    status = CASE WHEN deps_remaining - d.n = 0 AND items_total IS NULL
                  THEN 'pending' ELSE status END
FROM (SELECT unhex(j.value) AS id, count(*) AS n FROM json_each(?1) j GROUP BY j.value) AS d
WHERE step.id = d.id AND step.status = 'blocked'
-- A step with a resource or a rate limit key is never handed off: its lock or its
-- key must admit it first, through the claim paths.
RETURNING seq, id, queue, resource IS NOT NULL OR rate_key IS NOT NULL AS needs_lock,
          deps_remaining = 0 AND items_total IS NULL AND for_each IS NULL AS ready,
          deps_remaining = 0 AND items_total IS NULL AND for_each IS NOT NULL AS expands,
          deps_remaining = 0 AND items_total IS NOT NULL AS joined,
          item_cursor AS cursor
