-- ?1 JSON array of step ids (hex), ?2 run id, ?3 items dropped: the steps will
-- expand afresh.
UPDATE step SET items_total = NULL, item_cursor = NULL, item_context = NULL
WHERE id IN (SELECT unhex(j.value) FROM json_each(?1) j)
