INSERT INTO event (kind, run_id, step, group_name, at, data)
VALUES (?1, ?2, ?3, ?4, (SELECT now_ms FROM db_clock), ?5)
