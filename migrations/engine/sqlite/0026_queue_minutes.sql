-- Per-minute counters per queue, for the dashboard's charts and `GET /api/v1/queues/series`:
-- one row per queue per minute, added to by the completer (one upsert per batch and queue)
-- and by a failed attempt, in the transaction that records it. `minute` is the minute's
-- start in Unix milliseconds. The pruner deletes a queue's rows older than seven days.
CREATE TABLE hangar_queue_minutes (
    queue           TEXT    NOT NULL,
    minute          INTEGER NOT NULL,
    completed       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    retried         INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum INTEGER NOT NULL DEFAULT 0,
    duration_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, minute)
);

-- The charts read every queue's last hour or day.
CREATE INDEX hangar_queue_minutes_minute ON hangar_queue_minutes (minute);
