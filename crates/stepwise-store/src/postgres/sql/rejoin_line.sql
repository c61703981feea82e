-- $1 run id: a retried keyed run waits at the back of its key's line.
UPDATE run
SET status = 'pending', waiting = true, line_seq = nextval('run_line_seq'), started_at = NULL
WHERE id = $1
RETURNING concurrency_key
