-- $1 run id: serializes, per run, everything that parks a step, delivers a signal,
-- uses a callback or wakes a wait, so a signal sent while a wait begins is seen by
-- one side or the other. Taken before any row lock (steps and runs are then locked
-- in the usual order, step before run), so it cannot join a deadlock.
SELECT pg_advisory_xact_lock(1398033, hashtext($1::text))
