-- Stepwise schema, version 6 (PostgreSQL): steps that wait without a worker.
--
-- A waiting step (status 'waiting') holds no lease row and no ready row. What it
-- waits for is on the step itself; `wait_until` is set only while it waits, so the
-- waker's index holds waiting steps with a time limit and nothing else, and the hot
-- path (claim, complete) never changes a column these indexes name: its updates stay
-- HOT. `callback_hash` is the SHA-256 of the current attempt's callback token (the
-- token itself is never stored); a new attempt's token replaces it.
ALTER TABLE step
    ADD COLUMN wait_kind text,
    ADD COLUMN wait_signal text,
    ADD COLUMN wait_until timestamptz,
    ADD COLUMN callback_hash text;
CREATE INDEX step_wait_due ON step (wait_until) WHERE wait_until IS NOT NULL;
CREATE INDEX step_waiting ON step (wait_kind) WHERE wait_kind IS NOT NULL;
CREATE UNIQUE INDEX step_callback ON step (callback_hash) WHERE callback_hash IS NOT NULL;

-- A run's mailbox. A signal is stored whether or not a step waits for it yet; a wait
-- consumes the oldest unconsumed one of its name (by `seq`, never by time).
CREATE TABLE signal (
    seq bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    name text NOT NULL,
    -- The sender's id: a repeated id is accepted once.
    sender_id text,
    data jsonb NOT NULL,
    -- The step that consumed it.
    consumed_by text,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX signal_sender ON signal (run_id, sender_id) WHERE sender_id IS NOT NULL;
CREATE INDEX signal_unconsumed ON signal (run_id, name, seq) WHERE consumed_by IS NULL;
CREATE INDEX signal_run ON signal (run_id);
