-- Stepwise schema, version 3 (PostgreSQL): flow control. Concurrency keys, paused
-- queues, resource locks.

-- One row per concurrency key. `active` counts runs holding a slot; it changes only
-- in the transactions that admit a run or end one (invariant 4), under this row's lock.
CREATE TABLE concurrency_key (
    key text PRIMARY KEY,
    max_active integer NOT NULL,
    active integer NOT NULL DEFAULT 0,
    -- Set by `queues set-limit`: workflows stop changing the limit.
    limit_set boolean NOT NULL DEFAULT false
);
-- A run's place in its key's line: drawn at creation and again at retry (the back of
-- the line), never a timestamp.
CREATE SEQUENCE run_line_seq;
ALTER TABLE run ADD COLUMN line_seq bigint;
-- The run holds one of its key's slots (from admission to its terminal state).
ALTER TABLE run ADD COLUMN holds_slot boolean NOT NULL DEFAULT false;
CREATE INDEX run_line ON run (concurrency_key, line_seq) WHERE status = 'pending';
CREATE INDEX run_slot ON run (concurrency_key) WHERE holds_slot;

-- The resource lock a step takes while it runs (its template rendered at creation).
-- Steps that need one are claimed through their own index, so the plain claim path
-- never looks at locks.
ALTER TABLE step ADD COLUMN resource text;
DROP INDEX step_claim;
CREATE INDEX step_claim ON step (queue, priority DESC, seq)
    WHERE status = 'pending' AND resource IS NULL;
CREATE INDEX step_claim_resource ON step (queue, priority DESC, seq)
    WHERE status = 'pending' AND resource IS NOT NULL;

-- Named mutexes with a TTL on the database clock. A step's lock lives as long as its
-- worker's lease plus a margin (heartbeats extend it) and goes with the step's
-- outcome; an expired row is free and swept by the reaper.
CREATE TABLE resource_lock (
    name text PRIMARY KEY,
    holder_kind text NOT NULL,
    holder_id text NOT NULL,
    token uuid NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX resource_lock_holder ON resource_lock (holder_id);
