-- Stepwise schema, version 8 (PostgreSQL): steps decided at run time (for_each).
--
-- A `for_each` step carries its spec in `for_each` until it expands. Expanding
-- inserts its items (`item_of` = the step, `item_index`, `item` = the element) and
-- turns the step into their join: `items_total` is set, and `deps_remaining`
-- counts the items not yet terminal (the ordinary join counter). `item_cursor`,
-- only with max_parallel, is the lowest index that may still be waiting for a
-- place. `item_context` is the dependency outputs every item's context carries,
-- built once at expansion with the array itself left out (each item has its own
-- element): an item's claim reads it by primary key instead of rebuilding it,
-- and copying the array, ten thousand times.
-- None of these columns is ever changed by a claim or an outcome of an item, and
-- the one new index names only columns that never change: step updates stay HOT.
ALTER TABLE step
    ADD COLUMN for_each jsonb,
    ADD COLUMN item_of uuid,
    ADD COLUMN item_index integer,
    ADD COLUMN item jsonb,
    ADD COLUMN items_total integer,
    ADD COLUMN item_cursor integer,
    ADD COLUMN item_context jsonb;
CREATE INDEX step_items ON step (item_of, item_index) WHERE item_of IS NOT NULL;

-- Child runs (`run = { workflow }` steps): the parent run and step that started a
-- run. Set at creation, never changed: the index keeps run updates HOT.
ALTER TABLE run ADD COLUMN parent_run uuid, ADD COLUMN parent_step text;
CREATE INDEX run_children ON run (parent_run, seq) WHERE parent_run IS NOT NULL;
