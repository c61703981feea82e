-- $1 step ids that just became pending and were not handed off: their ready rows
-- (a pending step always has one).
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT s.queue, s.priority, s.seq, s.id, s.resource, s.rate_key, s.fair_key
FROM step s
WHERE s.id = ANY ($1::uuid[]) AND s.status = 'pending'
