-- Stepwise schema, version 9 (SQLite): rate limits and fairness.
--
-- A rate limit is one row per key: its limit (from the workflow file, or from
-- `limits set`, which marks it overridden) and the theoretical arrival time of a
-- generic cell rate (GCRA), advanced in the claim transaction that admits a start.
CREATE TABLE rate_limit (
    key TEXT PRIMARY KEY,
    limit_count INTEGER NOT NULL,
    per_ms INTEGER NOT NULL,
    burst INTEGER NOT NULL,
    overridden INTEGER NOT NULL DEFAULT 0,
    tat INTEGER,
    paused_until INTEGER,
    admitted INTEGER NOT NULL DEFAULT 0,
    last_admitted INTEGER
);

-- A step's rate key and its run's fairness key, rendered when the run is created.
-- Pending steps with either are claimed per key, through their own indexes.
ALTER TABLE step ADD COLUMN rate_key TEXT;
ALTER TABLE step ADD COLUMN fair_key TEXT;
CREATE INDEX step_rate ON step (queue, rate_key, priority DESC, seq)
    WHERE status = 'pending' AND rate_key IS NOT NULL;
CREATE INDEX step_fair ON step (queue, fair_key, priority DESC, seq)
    WHERE status = 'pending' AND fair_key IS NOT NULL AND rate_key IS NULL
      AND resource IS NULL;

-- When each fairness key of a queue was last served (a sequence, not a time).
CREATE TABLE fair_lane (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    served INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
);
