-- $1 step id, $2 run id, $3 number, $4 worker, $5 lease, $6 started, $7 outcome, $8 error, $9 log.
INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                     outcome, error, log, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT stepwise_now()))
