SELECT DISTINCT ON (name) name, version, spec, created_at FROM workflow
ORDER BY name, version DESC
