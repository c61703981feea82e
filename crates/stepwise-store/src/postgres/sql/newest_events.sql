-- The newest $2 final events (of transactions older than every running one, as
-- read_events serves them), optionally of run $1, returned oldest first. The text of
-- xid has a name of its own so that both orders are by the xid8 column, never by text
-- (where 10000 sorts before 9999).
SELECT seq, xid_text, kind, run_id, step, group_name, at, data
FROM (
    SELECT seq, xid, xid::text AS xid_text, kind, run_id, step, group_name, at, data
    FROM event
    WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
      AND ($1::uuid IS NULL OR run_id = $1)
    ORDER BY event.xid DESC, event.seq DESC
    LIMIT $2
) newest
ORDER BY newest.xid, newest.seq
