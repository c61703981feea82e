-- $1 run id: revokes the leases of the run's running steps. Their outcomes are
-- refused from now on, and their workers stop them (`revoked_leases.sql`).
UPDATE step
SET revoked_at = (SELECT stepwise_now())
WHERE run_id = $1 AND status = 'running' AND revoked_at IS NULL
RETURNING name
