UPDATE api_token SET revoked_at = coalesce(revoked_at, stepwise_now()) WHERE id = $1
