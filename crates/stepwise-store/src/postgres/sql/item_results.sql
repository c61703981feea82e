-- $1 expanded step id: its items as the join reads them, in order.
SELECT s.item_index, s.status, s.output
FROM step s
WHERE s.item_of = $1
ORDER BY s.item_index
