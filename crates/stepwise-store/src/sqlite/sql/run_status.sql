SELECT status FROM run WHERE id = ?1
