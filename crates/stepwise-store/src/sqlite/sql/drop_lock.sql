-- ?1 name, ?2 token: undoes a lock taken for a step that could not be claimed.
DELETE FROM resource_lock WHERE name = ?1 AND token = ?2
