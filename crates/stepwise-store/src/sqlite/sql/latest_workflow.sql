SELECT name, version, spec, created_at FROM workflow
WHERE name = ?1 AND (?2 IS NULL OR version = ?2)
ORDER BY version DESC
LIMIT 1
