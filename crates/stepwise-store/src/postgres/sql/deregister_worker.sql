UPDATE worker SET status = 'stopped', stopped_at = (SELECT stepwise_now())
WHERE id = $1 AND status = 'alive'
