-- $1 step id, $2 lease token, $3 the token's hash: the attempt's callback, if the
-- lease is current. A newer attempt's hash replaces an older one's.
UPDATE step SET callback_hash = $3
WHERE id = $1 AND lease_token = $2 AND status = 'running' AND revoked_at IS NULL
RETURNING id
