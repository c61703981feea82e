-- $1 queues, $2 fairness keys: the lanes new runs' steps wait in. A new lane has
-- never been served (0, before any sequence value), so it is served first.
INSERT INTO fair_lane (queue, key, served)
SELECT DISTINCT i.queue, i.key, 0
FROM unnest($1::text[], $2::text[]) AS i(queue, key)
ON CONFLICT (queue, key) DO NOTHING
