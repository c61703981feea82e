DELETE FROM resource_lock WHERE name = ?1
