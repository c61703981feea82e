UPDATE worker SET status = 'stopped', stopped_at = (SELECT now_ms FROM db_clock) WHERE id = ?1 AND status = 'alive'
