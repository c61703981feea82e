-- $1 step id: a `for_each` step about to expand (claimable now, not yet expanded).
SELECT s.run_id, s.name, s.for_each
FROM step s
WHERE s.id = $1 AND s.for_each IS NOT NULL AND s.items_total IS NULL
  AND s.status IN ('pending', 'running')
