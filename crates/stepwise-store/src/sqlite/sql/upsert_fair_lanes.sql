-- ?1 JSON array of [queue, key]: the lanes new runs' steps wait in. A new lane has
-- never been served (0), so it is served first.
INSERT INTO fair_lane (queue, key, served)
SELECT DISTINCT j.value ->> '$[0]', j.value ->> '$[1]', 0
FROM json_each(?1) j
WHERE true
ON CONFLICT (queue, key) DO NOTHING
