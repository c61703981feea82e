SELECT w.id, w.name, w.queues, w.status, w.started_at, w.heartbeat_at, w.expires_at,
       (SELECT count(*) FROM step_lease l
        WHERE l.worker_id = w.id
          AND EXISTS (SELECT 1 FROM step s
                      WHERE s.id = l.step_id AND s.status = 'running'
                        AND s.lease_token = l.token
                      OFFSET 0))
           AS running_steps
FROM worker w
WHERE w.status = 'alive' OR w.stopped_at > (SELECT stepwise_now()) - interval '1 hour'
ORDER BY w.seq
