-- $1 step ids, $2 lease tokens. Locks the steps still running under those leases and
-- their runs (step before run, as everywhere), so that the statement that follows
-- sees whether each run is halting, and a halt cannot commit in between.
SELECT s.id
FROM step s
JOIN unnest($1::uuid[], $2::uuid[]) AS i(id, token)
  ON s.id = i.id AND s.lease_token = i.token
JOIN run r ON r.id = s.run_id
WHERE s.status = 'running'
ORDER BY s.id
FOR UPDATE OF s, r
