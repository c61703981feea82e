-- ?1 JSON array of claimed step seqs, ?2 the worker id (text).
INSERT INTO event (kind, run_id, step, group_name, at, data)
SELECT 'step.started', s.run_id, s.name, r.group_name, (SELECT now_ms FROM db_clock),
       json_object('attempt', s.attempt, 'worker_id', ?2)
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
ORDER BY j.key
