UPDATE worker
SET heartbeat_at = (SELECT stepwise_now()),
    expires_at = (SELECT stepwise_now()) + lease_ms * interval '1 millisecond'
WHERE id = $1 AND status = 'alive'
RETURNING expires_at
