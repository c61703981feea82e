SELECT name, total, remaining, created_at, completed_at FROM run_group WHERE name = ?1
