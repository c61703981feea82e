SELECT concurrency_key FROM run WHERE id = ?1
