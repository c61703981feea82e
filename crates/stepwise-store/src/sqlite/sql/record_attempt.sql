INSERT INTO attempt (step_id, run_id, number, worker_id, lease_token, started_at,
                     finished_at, outcome, error, log)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT now_ms FROM db_clock), ?7, ?8, ?9)
