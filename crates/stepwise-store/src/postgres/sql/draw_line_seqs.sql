-- $1 how many: places at the back of concurrency-key lines, drawn while the keys'
-- rows are locked, so a key's line order is its commit order.
SELECT nextval('run_line_seq') FROM generate_series(1, $1)
