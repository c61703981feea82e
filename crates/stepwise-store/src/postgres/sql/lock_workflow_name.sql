-- Two registrations of one name must not pick the same next version.
SELECT pg_advisory_xact_lock(hashtext('stepwise.workflow.' || $1))
