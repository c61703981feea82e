INSERT INTO run_group (name, total, remaining, created_at) VALUES (?1, 0, 0, (SELECT now_ms FROM db_clock))
ON CONFLICT (name) DO NOTHING
RETURNING name
