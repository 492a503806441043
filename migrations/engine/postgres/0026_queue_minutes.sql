-- Per-minute counters per queue, for the dashboard's charts and `GET /api/v1/queues/series`:
-- one row per queue per minute, added to by the completer (one upsert per batch and queue)
-- and by a failed attempt, in the transaction that records it; never a scan of the jobs.
-- `failed` counts jobs that failed for good, `retried` failed attempts that will run again;
-- the duration sums are over attempts (completed and failed) that have a start time.
-- The pruner deletes a queue's rows older than seven days.
CREATE TABLE hangar_queue_minutes (
    queue           TEXT        NOT NULL,
    minute          TIMESTAMPTZ NOT NULL,
    completed       BIGINT      NOT NULL DEFAULT 0,
    failed          BIGINT      NOT NULL DEFAULT 0,
    retried         BIGINT      NOT NULL DEFAULT 0,
    duration_ms_sum BIGINT      NOT NULL DEFAULT 0,
    duration_count  BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, minute)
);

-- The charts read every queue's last hour or day.
CREATE INDEX hangar_queue_minutes_minute ON hangar_queue_minutes (minute);
