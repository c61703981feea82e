-- $1 name, $2 number of member runs created. An empty group is complete at once.
UPDATE run_group
SET total = $2, remaining = $2,
    completed_at = CASE WHEN $2 = 0 THEN (SELECT stepwise_now()) END
WHERE name = $1
