-- ?1 parent run, ?2 step name: the step waiting for a child that just ended.
SELECT id FROM step
WHERE run_id = ?1 AND name = ?2 AND status = 'waiting' AND wait_kind = 'child'
