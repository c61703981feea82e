-- Stepwise schema, version 7 (SQLite): schedules. The single writer fires them: the
-- write transaction that finds a schedule due creates its runs and moves
-- `next_fire_at` past now. `schedule_fire` is the ledger of fire times that created
-- a run (one at most per fire time).
CREATE TABLE schedule (
    name TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_fire_at INTEGER,
    last_fire_at INTEGER,
    last_run_id BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX schedule_due ON schedule (next_fire_at) WHERE paused = 0;
CREATE INDEX schedule_workflow ON schedule (workflow);

CREATE TABLE schedule_fire (
    schedule TEXT NOT NULL,
    fire_time INTEGER NOT NULL,
    run_id BLOB NOT NULL,
    fired_at INTEGER NOT NULL,
    PRIMARY KEY (schedule, fire_time)
);
CREATE INDEX schedule_fire_run ON schedule_fire (run_id);
