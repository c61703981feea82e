-- ?1 step id: its run (it never changes).
SELECT run_id FROM step WHERE id = ?1
