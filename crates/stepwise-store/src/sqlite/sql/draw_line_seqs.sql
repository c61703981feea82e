-- ?1 how many: places at the back of concurrency-key lines. Returns the first; the
-- writer holds the database lock, so a key's line order is its commit order.
UPDATE line_counter SET next = next + ?1 WHERE singleton = 1
RETURNING next - ?1
