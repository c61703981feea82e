INSERT INTO worker (id, name, queues, lease_ms, status, expires_at)
VALUES ($1, $2, $3, $4, 'alive', (SELECT stepwise_now()) + $4 * interval '1 millisecond')
RETURNING expires_at
