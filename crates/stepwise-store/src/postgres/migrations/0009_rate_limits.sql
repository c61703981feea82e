-- Stepwise schema, version 9 (PostgreSQL): rate limits and fairness.
--
-- A rate limit is one row per key: its limit (from the workflow file, or from
-- `limits set`, which marks it overridden so files no longer change it) and its
-- state, the theoretical arrival time of a generic cell rate (GCRA), advanced in
-- the claim transaction that admits a start. A paused key admits nothing until
-- `paused_until`.
CREATE TABLE rate_limit (
    key text PRIMARY KEY,
    limit_count integer NOT NULL,
    per_ms bigint NOT NULL,
    burst integer NOT NULL,
    overridden boolean NOT NULL DEFAULT false,
    tat timestamptz,
    paused_until timestamptz,
    admitted bigint NOT NULL DEFAULT 0,
    last_admitted timestamptz
);

-- A step's rate key and its run's fairness key, rendered when the run is created,
-- ride on its ready row. Ready rows with either wait in their own index, per key:
-- the plain claim never looks at them, so a key that admits nothing now is never
-- scanned, and one tenant's backlog is not in another's way.
ALTER TABLE step ADD COLUMN rate_key text, ADD COLUMN fair_key text;
ALTER TABLE step_ready ADD COLUMN rate_key text, ADD COLUMN fair_key text;
DROP INDEX step_ready_claim;
CREATE INDEX step_ready_claim ON step_ready (queue, priority DESC, seq)
    WHERE resource IS NULL AND rate_key IS NULL AND fair_key IS NULL;
CREATE INDEX step_ready_rate ON step_ready (queue, rate_key, priority DESC, seq)
    WHERE rate_key IS NOT NULL;
CREATE INDEX step_ready_fair ON step_ready (queue, fair_key, priority DESC, seq)
    WHERE fair_key IS NOT NULL AND rate_key IS NULL AND resource IS NULL;

-- When each fairness key of a queue was last served (a sequence, not a time):
-- claims take the least recently served key first.
CREATE TABLE fair_lane (
    queue text NOT NULL,
    key text NOT NULL,
    served bigint NOT NULL,
    PRIMARY KEY (queue, key)
);
CREATE SEQUENCE fair_served;
