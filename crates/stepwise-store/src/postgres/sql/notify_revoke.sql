-- Tells workers of this schema to look for revoked leases at once.
SELECT pg_notify('stepwise_revoke_' || current_schema(), '')
