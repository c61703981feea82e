-- $1 name: the lock, if a live holder has it.
SELECT name, holder_kind, holder_id, acquired_at, expires_at, token
FROM resource_lock
WHERE name = $1 AND expires_at > (SELECT stepwise_now())
FOR UPDATE
