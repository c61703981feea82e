-- $1 run id, $2 name, $3 sender's id, $4 data: into the run's mailbox.
INSERT INTO signal (run_id, name, sender_id, data, created_at)
VALUES ($1, $2, $3, $4, (SELECT stepwise_now()))
RETURNING seq
