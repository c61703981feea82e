-- $1 expanded step id (locked by the unblock that freed the places), $2 its cursor,
-- $3 places freed: the lowest-index waiting items at or after the cursor become
-- claimable (a range scan of step_items: everything below the cursor already had
-- its place), and the cursor moves past them.
WITH next AS (
    SELECT s.id
    FROM step s
    WHERE s.item_of = $1 AND s.item_index >= $2 AND s.status = 'blocked'
    ORDER BY s.item_index
    LIMIT $3
),
released AS (
    UPDATE step s
    SET status = 'pending', deps_remaining = 0
    FROM next
    WHERE s.id = next.id
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.rate_key, s.fair_key, s.item_index
),
ready AS (
    INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
    SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM released
)
UPDATE step p
SET item_cursor = greatest(p.item_cursor, (SELECT max(item_index) + 1 FROM released))
WHERE p.id = $1 AND EXISTS (SELECT 1 FROM released)
RETURNING p.item_cursor
