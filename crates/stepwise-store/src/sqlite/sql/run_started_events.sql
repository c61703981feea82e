-- ?1 JSON array of admitted run ids (hex): one run.started each, in line order.
INSERT INTO event (kind, run_id, group_name, at, data)
SELECT 'run.started', r.id, r.group_name, (SELECT now_ms FROM db_clock),
       json_object('concurrency_key', r.concurrency_key)
FROM json_each(?1) j
JOIN run r ON r.id = unhex(j.value)
ORDER BY r.line_seq
