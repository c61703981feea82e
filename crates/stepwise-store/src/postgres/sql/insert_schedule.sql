-- $1 name, $2 workflow, $3 spec, $4 its first fire time after now.
INSERT INTO schedule (name, workflow, spec, next_fire_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, (SELECT stepwise_now()), (SELECT stepwise_now()))
