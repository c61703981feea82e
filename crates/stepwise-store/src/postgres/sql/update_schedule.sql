-- $1 name, $2 spec, $3 its next fire time after now: a changed schedule starts afresh.
UPDATE schedule SET spec = $2, next_fire_at = $3, updated_at = (SELECT stepwise_now())
WHERE name = $1
