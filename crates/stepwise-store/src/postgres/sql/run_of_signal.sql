-- $1 run id: what a signal needs to know of its run.
SELECT status, group_name FROM run WHERE id = $1
