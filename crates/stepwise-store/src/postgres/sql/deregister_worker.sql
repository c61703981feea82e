UPDATE worker SET status = 'stopped', stopped_at = stepwise_now()
WHERE id = $1 AND status = 'alive'
