-- ?1 JSON array of just-completed step seqs.
INSERT INTO event (kind, run_id, step, group_name, at, data)
SELECT 'step.completed', s.run_id, s.name, r.group_name, s.finished_at,
       json_object('attempt', s.attempt)
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
ORDER BY j.key
