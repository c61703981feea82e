SELECT w.id, w.name, w.queues, w.status, w.started_at, w.heartbeat_at, w.expires_at,
       (SELECT count(*) FROM step_lease l JOIN step s ON s.id = l.step_id
        WHERE l.worker_id = w.id AND s.status = 'running' AND s.lease_token = l.token)
           AS running_steps
FROM worker w
WHERE w.status = 'alive' OR w.stopped_at > (SELECT stepwise_now()) - interval '1 hour'
ORDER BY w.seq
