-- $1 run id.
SELECT status FROM run WHERE id = $1
