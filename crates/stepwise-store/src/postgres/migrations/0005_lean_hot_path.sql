-- Stepwise schema, version 5 (PostgreSQL): the lean hot path.
--
-- step.status stays the durable truth and the fence, but no index on step or run
-- names a column the hot path changes, so claims and outcomes update those rows
-- HOT (no index entries). The churn moves to two insert/delete tables:
--   step_ready: the claimable set. Every statement that makes a step 'pending'
--     inserts its row; the claim deletes it. A row whose step is no longer pending
--     (cancelled or skipped while claimable) is stale and harmless: claims read it
--     joined to its step and keep only pending steps.
--   step_lease: one row per running attempt, inserted by the claim and deleted by
--     every outcome. Readers keep only rows whose step still runs under that token,
--     so a stale row is harmless too.
-- Both tables are small and turn over fast: vacuum them after a fixed number of
-- dead rows, whatever their size.

CREATE TABLE step_ready (
    queue text NOT NULL,
    priority integer NOT NULL,
    seq bigint NOT NULL,
    step_id uuid NOT NULL,
    resource text
) WITH (fillfactor = 100, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX step_ready_claim ON step_ready (queue, priority DESC, seq)
    WHERE resource IS NULL;
CREATE INDEX step_ready_resource ON step_ready (queue, priority DESC, seq)
    WHERE resource IS NOT NULL;
INSERT INTO step_ready (queue, priority, seq, step_id, resource)
SELECT queue, priority, seq, id, resource FROM step WHERE status = 'pending';

CREATE TABLE step_lease (
    worker_id uuid NOT NULL,
    step_id uuid NOT NULL,
    token uuid NOT NULL,
    PRIMARY KEY (worker_id, step_id)
) WITH (fillfactor = 100, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
INSERT INTO step_lease (worker_id, step_id, token)
SELECT worker_id, id, lease_token FROM step
WHERE status = 'running' AND worker_id IS NOT NULL AND lease_token IS NOT NULL;

-- run_after is set only while a step waits out a backoff or a delayed start (and on
-- the blocked roots of a keyed run with a delayed start): promotion clears it, and
-- steps leaving 'scheduled' any other way clear it too.
UPDATE step SET run_after = NULL WHERE run_after IS NOT NULL AND status <> 'scheduled'
    AND status <> 'blocked';
DROP INDEX step_claim;
DROP INDEX step_claim_resource;
DROP INDEX step_due;
DROP INDEX step_running;
DROP INDEX step_revoked;
CREATE INDEX step_due ON step (run_after) WHERE run_after IS NOT NULL;
-- Room on each page for the HOT versions of its rows' claim and outcome updates:
-- measured against 70 on the noop bench, 60 gave the higher HOT share (59 against
-- 54 %) and the higher drain rate.
ALTER TABLE step SET (fillfactor = 60);

-- A keyed run waiting for a slot. Only waiting runs are in run_line, so the status
-- changes of every other run are HOT.
ALTER TABLE run ADD COLUMN waiting boolean NOT NULL DEFAULT false;
UPDATE run SET waiting = true WHERE status = 'pending' AND concurrency_key IS NOT NULL;
DROP INDEX run_line;
CREATE INDEX run_line ON run (concurrency_key, line_seq) WHERE waiting;

-- Events are ordered and found by (xid, seq) and (run_id, xid, seq); a third index on
-- seq alone was one more entry per event.
ALTER TABLE event DROP CONSTRAINT event_pkey;
