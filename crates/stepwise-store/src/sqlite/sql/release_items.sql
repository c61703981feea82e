-- ?1 expanded step id, ?2 its cursor, ?3 places freed: the lowest-index waiting
-- items at or after the cursor become claimable (everything below the cursor
-- already had its place).
UPDATE step
SET status = 'pending', deps_remaining = 0
WHERE seq IN (SELECT s.seq FROM step s
              WHERE s.item_of = ?1 AND s.item_index >= ?2 AND s.status = 'blocked'
              ORDER BY s.item_index
              LIMIT ?3)
RETURNING item_index
