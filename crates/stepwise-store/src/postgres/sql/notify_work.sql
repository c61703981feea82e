-- Wakes idle workers of this schema: new claimable steps may exist. Sent at most
-- once per transaction (NOTIFY takes a global lock at commit).
SELECT pg_notify('stepwise_work_' || current_schema(), '')
