-- ?1 worker id, after its heartbeat: its running steps' locks live as long as its
-- lease plus a margin of one lease. Holder ids are step ids as hyphenated text.
UPDATE resource_lock
SET expires_at = (SELECT w.expires_at + w.lease_ms FROM worker w WHERE w.id = ?1)
WHERE holder_kind = 'step'
  AND holder_id IN (
      SELECT lower(substr(hex(s.id), 1, 8) || '-' || substr(hex(s.id), 9, 4) || '-'
                   || substr(hex(s.id), 13, 4) || '-' || substr(hex(s.id), 17, 4) || '-'
                   || substr(hex(s.id), 21))
      FROM step s
      WHERE s.worker_id = ?1 AND s.status = 'running')
