-- ?1 cutoff (ms), ?2 most runs: terminal runs finished before the cutoff. Runs
-- after prune_events/attempts/steps.sql in the same transaction, with the same
-- cutoff, so they pick the same runs.
DELETE FROM run WHERE id IN (
    SELECT id FROM run
    WHERE finished_at < ?1
      AND status IN ('completed', 'failed', 'cancelled', 'timed_out', 'compensated',
                     'compensation_failed')
    ORDER BY seq
    LIMIT ?2
)
