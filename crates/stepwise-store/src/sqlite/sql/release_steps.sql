-- Back to pending at once; the attempt is not counted.
UPDATE step
SET status = 'pending', attempt = attempt - 1
WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
RETURNING run_id, name, attempt + 1, worker_id, started_at
