-- $1 run ids. Locks the runs in id order before their steps' dependents, the order
-- every path takes (step, then run, then other steps), so that a completion and a
-- halt of the same run never deadlock.
SELECT id FROM run WHERE id = ANY ($1) ORDER BY id FOR UPDATE
