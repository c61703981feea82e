-- ?1 JSON array of created run ids (hex), in creation order.
INSERT INTO event (kind, run_id, group_name, at, data)
SELECT 'run.created', r.id, r.group_name, r.created_at,
       json_object('workflow', r.workflow, 'version', r.workflow_version)
FROM json_each(?1) j
JOIN run r ON r.id = unhex(j.value)
ORDER BY j.key
