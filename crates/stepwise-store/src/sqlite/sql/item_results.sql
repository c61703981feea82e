-- ?1 expanded step id: its items as the join reads them, in order.
SELECT item_index, status, output
FROM step
WHERE item_of = ?1
ORDER BY item_index
