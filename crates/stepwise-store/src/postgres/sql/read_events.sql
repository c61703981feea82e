-- $1 xid and $2 seq of the cursor, $3 run filter, $4 limit. Only transactions older
-- than every running one are served: their events can no longer change.
SELECT seq, xid::text, kind, run_id, step, group_name, at, data
FROM event
WHERE (xid, seq) > ($1::text::xid8, $2::bigint)
  AND xid < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::uuid IS NULL OR run_id = $3)
ORDER BY xid, seq
LIMIT $4
