-- The newest $2 final events (of transactions older than every running one, as
-- read_events serves them), optionally of run $1, returned oldest first.
SELECT seq, xid_text, kind, run_id, step, group_name, at, data
FROM (
    SELECT seq, xid, xid::text AS xid_text, kind, run_id, step, group_name, at, data
    FROM event
    WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
      AND ($1::uuid IS NULL OR run_id = $1)
    ORDER BY xid DESC, seq DESC
    LIMIT $2
) newest
ORDER BY xid, seq
