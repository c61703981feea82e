UPDATE api_token SET revoked_at = coalesce(revoked_at, (SELECT stepwise_now())) WHERE id = $1
