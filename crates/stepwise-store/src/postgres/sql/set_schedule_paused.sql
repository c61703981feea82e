-- $1 name, $2 paused.
UPDATE schedule SET paused = $2, updated_at = (SELECT stepwise_now()) WHERE name = $1
RETURNING name
