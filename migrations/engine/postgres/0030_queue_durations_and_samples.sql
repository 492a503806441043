-- Attempt durations as a histogram per queue and minute, for percentiles without a scan of the
-- jobs: `d<k>` counts the minute's attempts whose duration fell in bucket k of
-- `workers/src/duration_histogram.rs` (bucket 0: under 1 ms; bucket k: from round(sqrt(2)^(k-1))
-- to round(sqrt(2)^k) ms, 1 rounded once; d46: 2 h 20 min and more). Added to by the same upsert
-- that adds the counters.
ALTER TABLE hangar_queue_minutes
    ADD COLUMN d0 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d1 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d2 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d3 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d4 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d5 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d6 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d7 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d8 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d9 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d10 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d11 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d12 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d13 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d14 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d15 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d16 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d17 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d18 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d19 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d20 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d21 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d22 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d23 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d24 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d25 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d26 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d27 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d28 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d29 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d30 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d31 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d32 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d33 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d34 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d35 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d36 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d37 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d38 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d39 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d40 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d41 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d42 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d43 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d44 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d45 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN d46 BIGINT NOT NULL DEFAULT 0;

-- Depth and lag per queue, sampled once a minute by the process that holds the queue's pruning
-- lease (`prune:<queue>`): `depth` = jobs waiting to run (available, scheduled, retryable, as
-- `GET /api/v1/queues` counts `waiting`), `lag_ms` = how long the oldest of them that is due
-- has waited past its run_at (0 when none is due). One row per queue and minute (a second
-- sampler of the same minute writes nothing); the pruner deletes rows older than seven days.
CREATE TABLE hangar_queue_samples (
    queue  TEXT        NOT NULL,
    minute TIMESTAMPTZ NOT NULL,
    depth  BIGINT      NOT NULL,
    lag_ms BIGINT      NOT NULL,
    PRIMARY KEY (queue, minute)
);

-- The charts read every queue's last hour or day.
CREATE INDEX hangar_queue_samples_minute ON hangar_queue_samples (minute);
