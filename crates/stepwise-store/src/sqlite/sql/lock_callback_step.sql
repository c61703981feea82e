-- ?1 step id, ?2 callback hash: the step, if that callback is still its current
-- attempt's: running (the action has not finished) or waiting. The write
-- transaction already holds the database lock.
SELECT status, lease_token FROM step
WHERE id = ?1 AND callback_hash = ?2 AND status IN ('running', 'waiting')
