-- $1 expanded step ids, $2 their run: a retry from these steps drops their items
-- (they expand afresh when they are claimable again); the run counts them no more.
WITH gone AS (
    DELETE FROM step WHERE item_of = ANY ($1::uuid[]) RETURNING id
),
unexpanded AS (
    UPDATE step
    SET items_total = NULL, item_cursor = NULL, item_context = NULL
    WHERE id = ANY ($1::uuid[])
)
UPDATE run SET steps_total = steps_total - (SELECT count(*) FROM gone)::integer
WHERE id = $2
