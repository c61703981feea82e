-- ?1 queue, ?2 JSON array of the keys just served, in the order served: each
-- becomes the most recently served, in that order.
INSERT INTO fair_lane (queue, key, served)
SELECT ?1, j.value, (SELECT coalesce(max(served), 0) FROM fair_lane) + j.key + 1
FROM json_each(?2) j
WHERE true
ON CONFLICT (queue, key) DO UPDATE SET served = excluded.served
