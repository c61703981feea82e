SELECT group_name FROM run WHERE id = ?1
