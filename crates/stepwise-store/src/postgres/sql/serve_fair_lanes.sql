-- $1 queue, $2 the keys just served, in the order served: each becomes the most
-- recently served, in that order.
INSERT INTO fair_lane (queue, key, served)
SELECT $1, k.key, nextval('fair_served')
FROM unnest($2::text[]) WITH ORDINALITY AS k(key, ord)
ORDER BY k.ord
ON CONFLICT (queue, key) DO UPDATE SET served = EXCLUDED.served
