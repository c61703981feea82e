SELECT name, version, spec, created_at FROM workflow
WHERE name = $1 AND ($2::integer IS NULL OR version = $2)
ORDER BY version DESC
LIMIT 1
