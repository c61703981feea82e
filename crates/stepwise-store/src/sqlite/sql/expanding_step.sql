-- ?1 step id: a `for_each` step about to expand (claimable now, not yet expanded).
SELECT run_id, name, for_each
FROM step
WHERE id = ?1 AND for_each IS NOT NULL AND items_total IS NULL
  AND status IN ('pending', 'running')
