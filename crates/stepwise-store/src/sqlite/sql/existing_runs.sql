SELECT id FROM run WHERE workflow = ?1 AND idempotency_key = ?2
