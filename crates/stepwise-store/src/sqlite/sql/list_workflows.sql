SELECT w.name, w.version, w.spec, w.created_at FROM workflow w
WHERE w.version = (SELECT max(version) FROM workflow v WHERE v.name = w.name)
ORDER BY w.name
