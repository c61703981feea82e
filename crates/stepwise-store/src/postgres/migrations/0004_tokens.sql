-- Stepwise schema, version 4 (PostgreSQL): API tokens. Only a SHA-256 of each secret
-- is kept.
CREATE TABLE api_token (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    scope text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT stepwise_now(),
    expires_at timestamptz,
    revoked_at timestamptz
);
