SELECT id, lease_token FROM step WHERE status = 'running' AND worker_id = ?1
