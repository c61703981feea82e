-- Stepwise schema, version 8 (SQLite): steps decided at run time (for_each).
--
-- A `for_each` step carries its spec in `for_each` (JSON) until it expands.
-- Expanding inserts its items (`item_of` = the step, `item_index`, `item` = the
-- element as JSON) and turns the step into their join: `items_total` is set, and
-- `deps_remaining` counts the items not yet terminal. `item_cursor`, only with
-- max_parallel, is the lowest index that may still be waiting for a place;
-- `item_context` (JSON) is the dependency outputs every item's context carries,
-- built once at expansion with the array itself left out.
ALTER TABLE step ADD COLUMN for_each TEXT;
ALTER TABLE step ADD COLUMN item_of BLOB;
ALTER TABLE step ADD COLUMN item_index INTEGER;
ALTER TABLE step ADD COLUMN item TEXT;
ALTER TABLE step ADD COLUMN items_total INTEGER;
ALTER TABLE step ADD COLUMN item_cursor INTEGER;
ALTER TABLE step ADD COLUMN item_context TEXT;
CREATE INDEX step_items ON step (item_of, item_index) WHERE item_of IS NOT NULL;

-- Child runs (`run = { workflow }` steps): the parent run and step that started a
-- run. Set at creation, never changed.
ALTER TABLE run ADD COLUMN parent_run BLOB;
ALTER TABLE run ADD COLUMN parent_step TEXT;
CREATE INDEX run_children ON run (parent_run, seq) WHERE parent_run IS NOT NULL;
