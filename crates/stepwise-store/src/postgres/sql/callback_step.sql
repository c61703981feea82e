-- $1 callback hash: the step whose current attempt it belongs to.
SELECT id, run_id FROM step WHERE callback_hash = $1
