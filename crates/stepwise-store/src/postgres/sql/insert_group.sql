INSERT INTO run_group (name, total, remaining) VALUES ($1, 0, 0)
ON CONFLICT (name) DO NOTHING
RETURNING name
