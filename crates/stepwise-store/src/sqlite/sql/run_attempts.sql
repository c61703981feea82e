SELECT step_id, number, worker_id, started_at, finished_at, outcome, error
FROM attempt
WHERE run_id = ?1
ORDER BY seq
