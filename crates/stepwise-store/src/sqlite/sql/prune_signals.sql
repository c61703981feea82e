-- ?1 cutoff (ms), ?2 most runs: the signal rows of the runs prune_runs.sql deletes.
DELETE FROM signal WHERE run_id IN (
    SELECT id FROM run
    WHERE finished_at < ?1
      AND status IN ('completed', 'failed', 'cancelled', 'timed_out', 'compensated',
                     'compensation_failed')
    ORDER BY seq
    LIMIT ?2
)
