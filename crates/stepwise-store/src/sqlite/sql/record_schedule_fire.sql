-- ?1 schedule, ?2 fire time, ?3 run: the ledger entry of a fire time, unless it has one.
INSERT INTO schedule_fire (schedule, fire_time, run_id, fired_at)
VALUES (?1, ?2, ?3, (SELECT now_ms FROM db_clock))
ON CONFLICT (schedule, fire_time) DO NOTHING
RETURNING run_id
