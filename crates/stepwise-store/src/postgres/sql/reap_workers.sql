-- $1 the caller, who never reaps itself. A worker row another session holds (its
-- own deregistration, another reaper) is skipped, never waited for: the holder is
-- dealing with it, or the next pass will.
WITH due AS (
    SELECT id
    FROM worker
    WHERE status = 'alive' AND expires_at < (SELECT stepwise_now()) AND id <> $1
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE worker w
SET status = 'dead', stopped_at = (SELECT stepwise_now())
FROM due
WHERE w.id = due.id
RETURNING w.id, w.name
