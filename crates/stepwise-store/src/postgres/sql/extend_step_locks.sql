-- $1 worker id, after its heartbeat: its running steps' locks live as long as its
-- lease plus a margin of one lease.
UPDATE resource_lock l
SET expires_at = w.expires_at + w.lease_ms * interval '1 millisecond'
FROM worker w, step s
WHERE w.id = $1 AND s.worker_id = w.id AND s.status = 'running'
  AND l.holder_kind = 'step' AND l.holder_id = s.id::text
