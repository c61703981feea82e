-- ?1 step id: its wait ends. It is running again, for the length of this
-- transaction, under the lease token it was parked with, so the completion and
-- failure paths (counters, dependents, the run's end, retries) record the outcome.
UPDATE step
SET status = 'running', wait_kind = NULL, wait_signal = NULL, wait_until = NULL,
    callback_hash = NULL
WHERE id = ?1 AND status = 'waiting'
RETURNING lease_token
