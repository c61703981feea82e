SELECT workflow, workflow_version, input, group_name FROM run WHERE id = ?1
