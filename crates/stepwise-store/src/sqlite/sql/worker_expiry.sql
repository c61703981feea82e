SELECT expires_at FROM worker WHERE id = ?1
