-- $1 signal seq, $2 the step that takes it.
UPDATE signal SET consumed_by = $2 WHERE seq = $1
