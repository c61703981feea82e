-- $1 the caller, who never reaps itself.
UPDATE worker
SET status = 'dead', stopped_at = stepwise_now()
WHERE status = 'alive' AND expires_at < stepwise_now() AND id <> $1
RETURNING id, name
