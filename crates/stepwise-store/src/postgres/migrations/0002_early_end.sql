-- Stepwise schema, version 2 (PostgreSQL): how a run ends early. Sagas, deadlines,
-- cancellation and retry.

-- When the run times out (database clock). Cleared by the one transaction that
-- fires it, so a deadline fires exactly once however many checkers race.
ALTER TABLE run ADD COLUMN deadline_at timestamptz;
-- Set by `cancel --no-compensate`: completed steps are not undone, and a running
-- compensation stops.
ALTER TABLE run ADD COLUMN no_compensate boolean NOT NULL DEFAULT false;
CREATE INDEX run_deadline ON run (deadline_at) WHERE deadline_at IS NOT NULL;

-- The forward step a compensation row undoes; NULL for the workflow's own steps.
ALTER TABLE step ADD COLUMN compensates text;
-- Whether the workflow gives this step a compensation.
ALTER TABLE step ADD COLUMN compensable boolean NOT NULL DEFAULT false;
-- Attempts made before the run's latest retry: the budget counts from here.
ALTER TABLE step ADD COLUMN attempt_base integer NOT NULL DEFAULT 0;
-- Set when the run was cancelled or timed out while this step ran: its lease is
-- revoked, no outcome of it is accepted, and its worker is told to stop it.
ALTER TABLE step ADD COLUMN revoked_at timestamptz;
CREATE INDEX step_revoked ON step (worker_id) WHERE revoked_at IS NOT NULL AND status = 'running';
