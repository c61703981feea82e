-- Whether the database has any rate limit or fairness key at all: without, a claim
-- takes only the plain path.
SELECT EXISTS (SELECT 1 FROM rate_limit) AS rated, EXISTS (SELECT 1 FROM fair_lane) AS fair
