-- ?1 step id: its callback was used; the token works once.
UPDATE step SET callback_hash = NULL WHERE id = ?1
