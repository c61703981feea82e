-- $1 key: its pause ends now.
UPDATE rate_limit SET paused_until = NULL WHERE key = $1 RETURNING key
