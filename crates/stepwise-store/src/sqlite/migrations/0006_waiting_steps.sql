-- Stepwise schema, version 6 (SQLite): steps that wait without a worker.
--
-- A waiting step (status 'waiting') is not claimable and holds no lease; what it
-- waits for is on the step itself. `wait_until` is set only while it waits (the
-- waker's index); `callback_hash` is the SHA-256 of the current attempt's callback
-- token (the token itself is never stored).
ALTER TABLE step ADD COLUMN wait_kind TEXT;
ALTER TABLE step ADD COLUMN wait_signal TEXT;
ALTER TABLE step ADD COLUMN wait_until INTEGER;
ALTER TABLE step ADD COLUMN callback_hash TEXT;
CREATE INDEX step_wait_due ON step (wait_until) WHERE wait_until IS NOT NULL;
CREATE INDEX step_waiting ON step (wait_kind) WHERE wait_kind IS NOT NULL;
CREATE UNIQUE INDEX step_callback ON step (callback_hash) WHERE callback_hash IS NOT NULL;

-- A run's mailbox, consumed oldest first (by `seq`).
CREATE TABLE signal (
    seq INTEGER PRIMARY KEY,
    run_id BLOB NOT NULL,
    name TEXT NOT NULL,
    sender_id TEXT,
    data TEXT NOT NULL,
    consumed_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX signal_sender ON signal (run_id, sender_id) WHERE sender_id IS NOT NULL;
CREATE INDEX signal_unconsumed ON signal (run_id, name, seq) WHERE consumed_by IS NULL;
CREATE INDEX signal_run ON signal (run_id);
