INSERT INTO event (kind, run_id, step, group_name, data, at)
VALUES ($1, $2, $3, $4, $5, (SELECT stepwise_now()))
