-- $1 expanded step id, $2 the lowest index of its items still waiting for a place.
UPDATE step SET item_cursor = $2 WHERE id = $1
