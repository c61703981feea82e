-- The reaper's own rows are taken with SKIP LOCKED; what else it touches (a group's
-- counter, a concurrency key, a halting run's other steps) it waits for only this
-- long, so a reaper stuck behind a silent session gives up and never holds up the
-- next one.
SET LOCAL lock_timeout = '1s'
