-- ?1 expanded step id, ?2 the index after the last item released.
UPDATE step SET item_cursor = max(item_cursor, ?2) WHERE id = ?1
