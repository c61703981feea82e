-- Stepwise schema, version 1 (PostgreSQL).

-- The database clock. Every decision of time reads stepwise_now(); tests move it by
-- changing offset_ms instead of sleeping, and every process sharing the schema sees it.
CREATE TABLE clock_offset (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    offset_ms bigint NOT NULL DEFAULT 0
);
INSERT INTO clock_offset DEFAULT VALUES;

CREATE FUNCTION stepwise_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT now() + (SELECT offset_ms FROM clock_offset) * interval '1 millisecond'
$$;

CREATE TABLE workflow (
    name text NOT NULL,
    version integer NOT NULL,
    spec jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT stepwise_now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE queue (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

CREATE TABLE run_group (
    name text PRIMARY KEY,
    seq bigserial NOT NULL,
    total integer NOT NULL,
    -- Runs not yet terminal; the transaction that takes it to 0 writes the one
    -- group.completed event.
    remaining integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT stepwise_now(),
    completed_at timestamptz
);

CREATE TABLE run (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL UNIQUE,
    workflow text NOT NULL,
    workflow_version integer NOT NULL,
    status text NOT NULL,
    -- Why the run is stopping early ('failed'); NULL while nothing went wrong. Its
    -- steps are no longer claimed; the run takes this status when steps_open is 0.
    halt text,
    input jsonb NOT NULL,
    idempotency_key text,
    concurrency_key text,
    group_name text,
    priority integer NOT NULL DEFAULT 0,
    steps_total integer NOT NULL,
    -- Steps not yet in a terminal state: the run's completion counter.
    steps_open integer NOT NULL,
    error text,
    created_at timestamptz NOT NULL DEFAULT stepwise_now(),
    started_at timestamptz,
    finished_at timestamptz
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX run_idempotency ON run (workflow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX run_by_group ON run (group_name, seq) WHERE group_name IS NOT NULL;

CREATE TABLE step (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL,
    run_id uuid NOT NULL,
    name text NOT NULL,
    queue text NOT NULL,
    status text NOT NULL,
    priority integer NOT NULL,
    -- Dependencies not yet completed: the join counter.
    deps_remaining integer NOT NULL,
    dependents uuid[] NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    backoff_initial_ms bigint NOT NULL,
    backoff_factor double precision NOT NULL,
    backoff_max_ms bigint NOT NULL,
    run_after timestamptz,
    worker_id uuid,
    lease_token uuid,
    started_at timestamptz,
    finished_at timestamptz,
    output jsonb,
    error text,
    UNIQUE (run_id, name)
) WITH (fillfactor = 70);
-- The claim index holds only claimable rows: backoff waits in 'scheduled'.
-- Every claim and outcome rewrites a step row outside HOT (status is in the claim
-- index's predicate): vacuum the hot tables early so dead tuples do not pile up.
ALTER TABLE step SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0,
                      autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE run SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX step_claim ON step (queue, priority DESC, seq) WHERE status = 'pending';
CREATE INDEX step_due ON step (run_after) WHERE status = 'scheduled';
CREATE INDEX step_running ON step (worker_id) WHERE status = 'running';

CREATE TABLE attempt (
    seq bigserial PRIMARY KEY,
    step_id uuid NOT NULL,
    run_id uuid NOT NULL,
    number integer NOT NULL,
    worker_id uuid,
    lease_token uuid,
    started_at timestamptz,
    finished_at timestamptz NOT NULL DEFAULT stepwise_now(),
    outcome text NOT NULL,
    error text,
    -- stdout and stderr of the attempt, truncated by the executor.
    log text
);
CREATE INDEX attempt_by_run ON attempt (run_id);

CREATE TABLE worker (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL,
    name text NOT NULL,
    queues text[] NOT NULL,
    lease_ms bigint NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT stepwise_now(),
    heartbeat_at timestamptz NOT NULL DEFAULT stepwise_now(),
    -- One lease per worker covers all its steps: a heartbeat is one row update.
    expires_at timestamptz NOT NULL,
    stopped_at timestamptz
);
ALTER TABLE worker SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 200);
CREATE INDEX worker_alive ON worker (expires_at) WHERE status = 'alive';

-- The transactional outbox. xid is the writing transaction: readers serve only
-- events of transactions older than every running one, so none is skipped.
CREATE TABLE event (
    seq bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind text NOT NULL,
    run_id uuid,
    step text,
    group_name text,
    at timestamptz NOT NULL DEFAULT stepwise_now(),
    data jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX event_order ON event (xid, seq);
CREATE INDEX event_by_run ON event (run_id, xid, seq) WHERE run_id IS NOT NULL;
