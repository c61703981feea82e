-- A claim need not wait for its WAL flush. If the database crashes before the flush,
-- the claim is lost and the step is pending again, exactly as if its worker had
-- died: the worker's later outcome names a lease the database never kept and is
-- refused, and the step starts again (with another step.started event). The
-- completing transaction commits synchronously and, the WAL being sequential, makes
-- the claim before it durable too. Runs, outcomes and their events still wait for
-- their flush.
SET LOCAL synchronous_commit = off
