-- Stepwise schema, version 4 (SQLite): API tokens. Only a SHA-256 of each secret is
-- kept. Times in ms.
CREATE TABLE api_token (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
