-- $1 schedule, $2 fire time, $3 run: the ledger entry of a fire time, unless it has one.
INSERT INTO schedule_fire (schedule, fire_time, run_id, fired_at)
VALUES ($1, $2, $3, (SELECT stepwise_now()))
ON CONFLICT (schedule, fire_time) DO NOTHING
RETURNING run_id
