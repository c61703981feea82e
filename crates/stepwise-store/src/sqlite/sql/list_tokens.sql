SELECT id, name, scope, created_at, expires_at, revoked_at FROM api_token ORDER BY id DESC
