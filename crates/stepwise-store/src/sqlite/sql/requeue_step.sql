UPDATE step SET status = 'pending' WHERE id = ?1
