-- Stepwise schema, version 2 (SQLite): how a run ends early. Sagas, deadlines,
-- cancellation and retry.

-- When the run times out (database clock, ms). Cleared by the one transaction that
-- fires it, so a deadline fires exactly once.
ALTER TABLE run ADD COLUMN deadline_at INTEGER;
-- Set by `cancel --no-compensate`: completed steps are not undone, and a running
-- compensation stops.
ALTER TABLE run ADD COLUMN no_compensate INTEGER NOT NULL DEFAULT 0;
CREATE INDEX run_deadline ON run (deadline_at) WHERE deadline_at IS NOT NULL;

-- The forward step a compensation row undoes; NULL for the workflow's own steps.
ALTER TABLE step ADD COLUMN compensates TEXT;
-- Whether the workflow gives this step a compensation.
ALTER TABLE step ADD COLUMN compensable INTEGER NOT NULL DEFAULT 0;
-- Attempts made before the run's latest retry: the budget counts from here.
ALTER TABLE step ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
-- Set when the run was cancelled or timed out while this step ran: its lease is
-- revoked, no outcome of it is accepted, and its worker is told to stop it.
ALTER TABLE step ADD COLUMN revoked_at INTEGER;
CREATE INDEX step_revoked ON step (worker_id) WHERE revoked_at IS NOT NULL AND status = 'running';
