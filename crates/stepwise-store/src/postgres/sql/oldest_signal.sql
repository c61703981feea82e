-- $1 run id, $2 signal name: the oldest unconsumed signal of that name.
SELECT seq, data FROM signal
WHERE run_id = $1 AND name = $2 AND consumed_by IS NULL
ORDER BY seq
LIMIT 1
