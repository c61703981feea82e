-- ?1 run id, ?2 a fresh line place: a retried keyed run waits at the back of its
-- key's line.
UPDATE run
SET status = 'pending', line_seq = ?2, started_at = NULL
WHERE id = ?1
