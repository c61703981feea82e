-- Stepwise schema, version 7 (PostgreSQL): schedules.
--
-- A schedule row is claimed by whichever process finds it due (FOR UPDATE SKIP
-- LOCKED: no leader), which creates the runs of its due fire times and moves
-- `next_fire_at` past now in the same transaction. `schedule_fire` is the ledger of
-- fire times that created a run: its primary key makes a fire time create one run
-- at most, also for backfills and a schedule removed and declared again.
CREATE TABLE schedule (
    name text PRIMARY KEY,
    workflow text NOT NULL,
    spec jsonb NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    -- The next fire time not yet fired (NULL: the expression never matches again).
    next_fire_at timestamptz,
    last_fire_at timestamptz,
    last_run_id uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX schedule_due ON schedule (next_fire_at) WHERE NOT paused;
CREATE INDEX schedule_workflow ON schedule (workflow);

CREATE TABLE schedule_fire (
    schedule text NOT NULL,
    fire_time timestamptz NOT NULL,
    run_id uuid NOT NULL,
    fired_at timestamptz NOT NULL,
    PRIMARY KEY (schedule, fire_time)
);
CREATE INDEX schedule_fire_run ON schedule_fire (run_id);
