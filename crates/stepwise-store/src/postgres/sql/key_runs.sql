-- $1 key: runs holding its slots, then runs waiting, each in line order.
SELECT id, holds_slot
FROM run
WHERE concurrency_key = $1 AND (holds_slot OR waiting)
ORDER BY line_seq
