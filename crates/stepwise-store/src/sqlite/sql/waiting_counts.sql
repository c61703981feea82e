-- Waiting steps per kind (wait_kind is set only while a step waits).
SELECT wait_kind AS kind, count(*) AS steps FROM step
WHERE wait_kind IS NOT NULL
GROUP BY wait_kind
