INSERT INTO workflow (name, version, spec) VALUES ($1, $2, $3)
