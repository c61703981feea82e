-- The newest ?2 events, optionally of run ?1, returned oldest first.
SELECT seq, kind, run_id, step, group_name, at, data
FROM (
    SELECT seq, kind, run_id, step, group_name, at, data
    FROM event
    WHERE (?1 IS NULL OR run_id = ?1)
    ORDER BY seq DESC
    LIMIT ?2
)
ORDER BY seq
