-- $1 step id, $2 callback hash: the step, locked, if that callback is still its
-- current attempt's. Running (the action has not finished) or waiting.
SELECT status, lease_token FROM step
WHERE id = $1 AND callback_hash = $2 AND status IN ('running', 'waiting')
FOR UPDATE
