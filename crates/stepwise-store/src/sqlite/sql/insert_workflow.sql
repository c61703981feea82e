INSERT INTO workflow (name, version, spec, created_at) VALUES (?1, ?2, ?3, (SELECT now_ms FROM db_clock))
