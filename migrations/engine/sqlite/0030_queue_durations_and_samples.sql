-- Attempt durations as a histogram per queue and minute, for percentiles without a scan of the
-- jobs: `d<k>` counts the minute's attempts whose duration fell in bucket k of
-- `workers/src/duration_histogram.rs` (bucket 0: under 1 ms; bucket k: from round(sqrt(2)^(k-1))
-- to round(sqrt(2)^k) ms, 1 rounded once; d46: 2 h 20 min and more). Added to by the same upsert
-- that adds the counters.
ALTER TABLE hangar_queue_minutes ADD COLUMN d0 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d2 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d3 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d4 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d5 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d6 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d7 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d9 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d10 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d11 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d12 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d13 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d14 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d15 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d16 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d17 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d18 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d19 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d20 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d21 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d22 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d23 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d24 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d25 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d26 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d27 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d28 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d29 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d30 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d31 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d32 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d33 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d34 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d35 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d36 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d37 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d38 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d39 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d40 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d41 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d42 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d43 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d44 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d45 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_queue_minutes ADD COLUMN d46 INTEGER NOT NULL DEFAULT 0;

-- Depth and lag per queue, sampled once a minute by the process that holds the queue's pruning
-- lease (`prune:<queue>`): `depth` = jobs waiting to run (available, scheduled, retryable, as
-- `GET /api/v1/queues` counts `waiting`), `lag_ms` = how long the oldest of them that is due
-- has waited past its run_at (0 when none is due). `minute` in Unix milliseconds. One row per queue and minute (a second
-- sampler of the same minute writes nothing); the pruner deletes rows older than seven days.
CREATE TABLE hangar_queue_samples (
    queue  TEXT        NOT NULL,
    minute INTEGER     NOT NULL,
    depth  INTEGER     NOT NULL,
    lag_ms INTEGER     NOT NULL,
    PRIMARY KEY (queue, minute)
);

-- The charts read every queue's last hour or day.
CREATE INDEX hangar_queue_samples_minute ON hangar_queue_samples (minute);
