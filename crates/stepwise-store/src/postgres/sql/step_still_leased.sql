-- $1 step id, $2 lease token: whether the step still runs under that lease (read
-- without locking, to tell a step the reaper skipped from one that moved on).
SELECT EXISTS (
    SELECT 1 FROM step WHERE id = $1 AND lease_token = $2 AND status = 'running'
)
