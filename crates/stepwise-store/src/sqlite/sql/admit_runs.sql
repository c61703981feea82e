-- ?1 key: admits its oldest waiting runs while slots are free (a negative LIMIT
-- would mean none, hence max(.., 0)). The caller counts the slots, frees the roots
-- and writes the events in this transaction (invariant 4). A run with compensation
-- steps was retried from compensation_failed: it goes back to compensating.
UPDATE run
SET status = CASE WHEN EXISTS (SELECT 1 FROM step s
                               WHERE s.run_id = run.id AND s.compensates IS NOT NULL)
                  THEN 'compensating' ELSE 'running' END,
    started_at = (SELECT now_ms FROM db_clock), holds_slot = 1
WHERE id IN (
    SELECT id FROM run
    WHERE concurrency_key = ?1 AND status = 'pending'
    ORDER BY line_seq
    LIMIT coalesce((SELECT max(max_active - active, 0) FROM concurrency_key WHERE key = ?1), 0)
)
RETURNING id
