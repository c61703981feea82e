SELECT w.id, w.name, w.queues, w.status, w.started_at, w.heartbeat_at, w.expires_at,
       (SELECT count(*) FROM step s WHERE s.status = 'running' AND s.worker_id = w.id)
           AS running_steps
FROM worker w
WHERE w.status = 'alive' OR w.stopped_at > (SELECT stepwise_now()) - interval '1 hour'
ORDER BY w.seq
