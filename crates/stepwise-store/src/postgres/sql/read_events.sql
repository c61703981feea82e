-- $1 xid and $2 seq of the cursor, $3 run filter, $4 limit. Only transactions older
-- than every running one are served: their events can no longer change.
-- The text of xid is selected under another name and the order names the table's
-- columns: ORDER BY resolves a bare name to an output column first, and ordering by
-- the text would put xid 10000 before 9999.
SELECT seq, xid::text AS xid_text, kind, run_id, step, group_name, at, data
FROM event
WHERE (event.xid, event.seq) > ($1::text::xid8, $2::bigint)
  AND event.xid < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::uuid IS NULL OR run_id = $3)
ORDER BY event.xid, event.seq
LIMIT $4
