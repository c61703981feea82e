-- The last final event: every event that becomes readable later sorts after it,
-- since its transaction is still running (xid >= xmin) or has not begun.
SELECT xid::text, seq
FROM event
WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY xid DESC, seq DESC
LIMIT 1
