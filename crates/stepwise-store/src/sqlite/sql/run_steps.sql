SELECT id, name, queue, status, attempt, max_attempts + attempt_base AS max_attempts,
       run_after, worker_id, started_at, finished_at, output, error, compensates, resource,
       dependents, wait_kind, wait_signal, wait_until
FROM step
WHERE run_id = ?1
ORDER BY seq
