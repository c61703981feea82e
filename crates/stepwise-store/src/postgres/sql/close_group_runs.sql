-- $1 group names, one entry per member run that just became terminal. Exactly one
-- transaction sees remaining reach 0 (row lock), and only it completes the group.
WITH closed AS (
    SELECT name, count(*)::integer AS n FROM unnest($1::text[]) AS name GROUP BY name
)
UPDATE run_group g
SET remaining = g.remaining - c.n,
    completed_at = CASE WHEN g.remaining - c.n = 0 THEN (SELECT stepwise_now()) END
FROM closed c
WHERE g.name = c.name AND g.completed_at IS NULL
RETURNING g.name, g.total, g.remaining
