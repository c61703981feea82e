-- Stepwise schema, version 3 (SQLite): flow control. Concurrency keys, paused
-- queues, resource locks.

-- One row per concurrency key. `active` counts runs holding a slot; it changes only
-- in the transactions that admit a run or end one (invariant 4).
CREATE TABLE concurrency_key (
    key TEXT PRIMARY KEY,
    max_active INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    -- Set by `queues set-limit`: workflows stop changing the limit.
    limit_set INTEGER NOT NULL DEFAULT 0
);
-- Places in concurrency-key lines: drawn at creation and again at retry (the back of
-- the line), never a timestamp. One row; the writer increments it.
CREATE TABLE line_counter (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    next INTEGER NOT NULL
);
INSERT INTO line_counter (singleton, next) VALUES (1, 1);
ALTER TABLE run ADD COLUMN line_seq INTEGER;
-- The run holds one of its key's slots (from admission to its terminal state).
ALTER TABLE run ADD COLUMN holds_slot INTEGER NOT NULL DEFAULT 0;
CREATE INDEX run_line ON run (concurrency_key, line_seq) WHERE status = 'pending';
CREATE INDEX run_slot ON run (concurrency_key) WHERE holds_slot;

-- The resource lock a step takes while it runs (its template rendered at creation).
ALTER TABLE step ADD COLUMN resource TEXT;
DROP INDEX step_claim;
CREATE INDEX step_claim ON step (queue, priority DESC, seq)
    WHERE status = 'pending' AND resource IS NULL;
CREATE INDEX step_claim_resource ON step (queue, priority DESC, seq)
    WHERE status = 'pending' AND resource IS NOT NULL;

-- Named mutexes with a TTL on the database clock (ms). A step's lock lives as long as
-- its worker's lease plus a margin (heartbeats extend it) and goes with the step's
-- outcome; an expired row is free and swept by the reaper.
CREATE TABLE resource_lock (
    name TEXT PRIMARY KEY,
    holder_kind TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    token BLOB NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX resource_lock_holder ON resource_lock (holder_id);
