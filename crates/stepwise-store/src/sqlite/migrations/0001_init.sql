-- Stepwise schema, version 1 (SQLite). Times are milliseconds since the Unix epoch,
-- ids are 16-byte blobs, JSON is text.

-- The database clock. Every decision of time reads db_clock.now_ms; tests move it
-- by changing offset_ms instead of sleeping, for every process using the file.
CREATE TABLE clock_offset (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    offset_ms INTEGER NOT NULL DEFAULT 0
);
INSERT INTO clock_offset (singleton) VALUES (1);
CREATE VIEW db_clock AS
    SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + offset_ms AS now_ms
    FROM clock_offset;

CREATE TABLE workflow (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE queue (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE run_group (
    name TEXT PRIMARY KEY,
    total INTEGER NOT NULL,
    -- Runs not yet terminal; the transaction that takes it to 0 writes the one
    -- group.completed event.
    remaining INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE TABLE run (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    -- Why the run is stopping early ('failed'); NULL while nothing went wrong.
    halt TEXT,
    input TEXT NOT NULL,
    idempotency_key TEXT,
    concurrency_key TEXT,
    group_name TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    steps_total INTEGER NOT NULL,
    -- Steps not yet in a terminal state: the run's completion counter.
    steps_open INTEGER NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE UNIQUE INDEX run_idempotency ON run (workflow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX run_by_group ON run (group_name, seq) WHERE group_name IS NOT NULL;

CREATE TABLE step (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    run_id BLOB NOT NULL,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    deps_remaining INTEGER NOT NULL,
    -- JSON array of the dependents' ids (hex text).
    dependents TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_initial_ms INTEGER NOT NULL,
    backoff_factor REAL NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    run_after INTEGER,
    worker_id BLOB,
    lease_token BLOB,
    started_at INTEGER,
    finished_at INTEGER,
    output TEXT,
    error TEXT,
    UNIQUE (run_id, name)
);
CREATE INDEX step_claim ON step (queue, priority DESC, seq) WHERE status = 'pending';
CREATE INDEX step_due ON step (run_after) WHERE status = 'scheduled';
CREATE INDEX step_running ON step (worker_id) WHERE status = 'running';

CREATE TABLE attempt (
    seq INTEGER PRIMARY KEY,
    step_id BLOB NOT NULL,
    run_id BLOB NOT NULL,
    number INTEGER NOT NULL,
    worker_id BLOB,
    lease_token BLOB,
    started_at INTEGER,
    finished_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    -- stdout and stderr of the attempt, truncated by the executor.
    log TEXT
);
CREATE INDEX attempt_by_run ON attempt (run_id);

CREATE TABLE worker (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    queues TEXT NOT NULL,
    lease_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    -- One lease per worker covers all its steps: a heartbeat is one row update.
    expires_at INTEGER NOT NULL,
    stopped_at INTEGER
);
CREATE INDEX worker_alive ON worker (expires_at) WHERE status = 'alive';

-- The transactional outbox. SQLite has one writer, so sequence order is commit
-- order; AUTOINCREMENT keeps a pruned sequence number from being handed out again.
CREATE TABLE event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    run_id BLOB,
    step TEXT,
    group_name TEXT,
    at INTEGER NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX event_by_run ON event (run_id, seq) WHERE run_id IS NOT NULL;
