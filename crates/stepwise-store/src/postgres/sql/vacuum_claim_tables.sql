-- The insert/delete tables of the hot path. Autovacuum visits a database about once a
-- minute (autovacuum_naptime); at thousands of steps a second that leaves hundreds of
-- thousands of dead rows and index entries for every claim to step over (measured:
-- the 300k drain sagged 24-55 % without this, none with it; BENCHMARKS.md). Small
-- tables: a vacuum takes milliseconds. SKIP_LOCKED: one already running is enough.
VACUUM (SKIP_LOCKED) step_ready, step_lease
