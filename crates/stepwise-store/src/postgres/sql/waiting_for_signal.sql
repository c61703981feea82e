-- $1 run id, $2 signal name: the oldest step of the run waiting for that signal.
SELECT id, name FROM step
WHERE run_id = $1 AND status = 'waiting' AND wait_kind = 'signal' AND wait_signal = $2
ORDER BY seq
LIMIT 1
FOR UPDATE
