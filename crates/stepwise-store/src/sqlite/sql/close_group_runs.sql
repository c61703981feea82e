-- One member run of group ?1 became terminal; the write that reaches 0 completes it.
UPDATE run_group
SET remaining = remaining - 1,
    completed_at = CASE WHEN remaining - 1 = 0 THEN (SELECT now_ms FROM db_clock) END
WHERE name = ?1 AND completed_at IS NULL
RETURNING total, remaining
