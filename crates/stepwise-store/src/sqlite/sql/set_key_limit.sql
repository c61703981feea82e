INSERT INTO concurrency_key (key, max_active, limit_set) VALUES (?1, ?2, 1)
ON CONFLICT (key) DO UPDATE SET max_active = ?2, limit_set = 1
