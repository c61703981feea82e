-- $1 workflow, $2 idempotency key: the run they name.
SELECT id FROM run WHERE workflow = $1 AND idempotency_key = $2
